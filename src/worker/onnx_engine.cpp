#include "worker/onnx_engine.hpp"

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <chrono>
#include <cmath>

namespace tandem::worker {

struct OnnxEngine::Impl {
  cv::dnn::Net net;
  ModelSchema schema;
  std::vector<std::string> all_outputs;
};

OnnxEngine::OnnxEngine() : impl_(std::make_unique<Impl>()) {}
OnnxEngine::~OnnxEngine() = default;

Result<std::unique_ptr<OnnxEngine>> OnnxEngine::load(const ModelManifest& manifest, int threads) {
  if (manifest.format != "onnx")
    return make_error(ErrorCode::invalid_request,
                      "model format \"" + manifest.format +
                          "\" is not supported by the reference worker (onnx only)");
  for (const auto& in : manifest.schema.inputs)
    if (in.datatype != DataType::FP32)
      return make_error(ErrorCode::invalid_request,
                        "input \"" + in.name + "\": the OpenCV engine takes FP32 inputs only");
  cv::setNumThreads(threads);
  std::unique_ptr<OnnxEngine> engine(new OnnxEngine());
  try {
    engine->impl_->net = cv::dnn::readNetFromONNX(manifest.artifact.string());
  } catch (const cv::Exception& e) {
    return make_error(ErrorCode::invalid_request,
                      "cannot load " + manifest.artifact.string() + ": " + e.what());
  } catch (const std::exception& e) {
    return make_error(ErrorCode::invalid_request,
                      "cannot load " + manifest.artifact.string() + ": " + e.what());
  }
  engine->impl_->schema = manifest.schema;
  for (const auto& out : manifest.schema.outputs) engine->impl_->all_outputs.push_back(out.name);

  // Warm-up: one row of zeros (OpenCV allocates its buffers on the first forward).
  v2::DecodedRequest warmup;
  warmup.batch_size = 1;
  for (const auto& spec : manifest.schema.inputs) {
    v2::DecodedInput in;
    in.name = spec.name;
    in.spec = &spec;
    std::size_t elements = 1;
    for (auto d : spec.shape) {
      in.shape.push_back(d < 0 ? 1 : d);
      elements *= static_cast<std::size_t>(d < 0 ? 1 : d);
    }
    in.values.assign(elements, 0.0f);
    warmup.inputs.push_back(std::move(in));
  }
  const auto warmup_started = std::chrono::steady_clock::now();
  auto result = engine->infer(warmup, {});
  engine->warmup_ms_ =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - warmup_started).count();
  if (!result)
    return make_error(ErrorCode::invalid_request,
                      "model " + manifest.name + " failed its warm-up run: " + result.error().message);
  return engine;
}

Status check_model(const ModelManifest& manifest) {
  if (manifest.format != "onnx") return Ok{};
  auto engine = OnnxEngine::load(manifest, 1);
  if (!engine) return engine.error();
  return Ok{};
}

Result<std::vector<v2::OutputTensor>> OnnxEngine::infer(const v2::DecodedRequest& request,
                                                        const std::vector<std::string>& requested) {
  auto& impl = *impl_;
  const auto& names = requested.empty() ? impl.all_outputs : requested;
  std::vector<cv::Mat> results;
  try {
    for (const auto& in : request.inputs) {
      std::vector<int> dims(in.shape.begin(), in.shape.end());
      // OpenCV does not copy here; the blob is consumed by forward() below.
      cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, const_cast<float*>(in.values.data()));
      impl.net.setInput(blob, in.name);
    }
    impl.net.forward(results, names);
  } catch (const cv::Exception& e) {
    return make_error(ErrorCode::internal, std::string("inference failed: ") + e.what());
  }
  std::vector<v2::OutputTensor> outputs;
  outputs.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const TensorSpec* spec = impl.schema.find_output(names[i]);
    if (spec == nullptr) return make_error(ErrorCode::internal, "unknown output " + names[i]);
    cv::Mat mat = results[i];
    if (mat.depth() != CV_32F) mat.convertTo(mat, CV_32F);
    if (!mat.isContinuous()) mat = mat.clone();
    v2::OutputTensor out;
    out.name = spec->name;
    out.datatype = spec->datatype;
    std::int64_t expected = 1;
    for (auto d : spec->shape) {
      std::int64_t dim = d < 0 ? request.batch_size : d;
      out.shape.push_back(dim);
      expected *= dim;
    }
    // OpenCV may add or drop unit dimensions (ArgMax comes back as [N, 1]): the element count
    // is what must agree with the declared shape.
    if (static_cast<std::int64_t>(mat.total()) != expected)
      return make_error(ErrorCode::internal, "output \"" + spec->name + "\" has " +
                                                 std::to_string(mat.total()) + " elements, expected " +
                                                 std::to_string(expected));
    const float* data = mat.ptr<float>();
    out.values.assign(data, data + mat.total());
    bool integral = spec->datatype != DataType::FP32 && spec->datatype != DataType::FP64 &&
                    spec->datatype != DataType::FP16;
    if (integral)
      for (auto& v : out.values) v = std::nearbyint(v);
    outputs.push_back(std::move(out));
  }
  return outputs;
}

} // namespace tandem::worker
