#pragma once
// Runs an ONNX model through OpenCV's DNN module. Inputs must be FP32 (what OpenCV takes);
// outputs are cast to the datatypes the manifest declares (OpenCV returns FP32 for all).
#include "base/status.hpp"
#include "protocol/v2_codec.hpp"
#include "model/model_manifest.hpp"

#include <memory>
#include <vector>

namespace tandem::worker {

class OnnxEngine {
public:
  /// Loads the artifact and runs one warm-up batch so the first request is not slow.
  static Result<std::unique_ptr<OnnxEngine>> load(const ModelManifest& manifest, int threads);
  ~OnnxEngine();
  OnnxEngine(const OnnxEngine&) = delete;
  OnnxEngine& operator=(const OnnxEngine&) = delete;

  /// Runs one (possibly batched) request; `requested` empty means every output. Not
  /// thread-safe: one call at a time.
  Result<std::vector<v2::OutputTensor>> infer(const v2::DecodedRequest& request,
                                              const std::vector<std::string>& requested);
  /// How long the warm-up batch took, in ms: a first, pessimistic measure of one request (the
  /// first run also allocates), which the worker reports to the gateway as its prior.
  [[nodiscard]] double warmup_ms() const { return warmup_ms_; }

private:
  OnnxEngine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  double warmup_ms_ = 0;
};

/// The check mode of the engine: loads the artifact and runs the warm-up batch, then frees it.
/// What the registry runs at push and `tandem serve` at start-up, so that a corrupt or empty
/// ONNX file is refused with OpenCV's reason instead of crash-looping workers. Formats other
/// than onnx pass (their worker, not this engine, is the judge).
Status check_model(const ModelManifest& manifest);

} // namespace tandem::worker
