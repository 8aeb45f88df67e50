#include "protocol/v2_codec.hpp"

#include "base/json_text.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <limits>

namespace tandem::v2 {
namespace json = boost::json;
namespace {

Error invalid(std::string message) {
  return make_error(ErrorCode::invalid_request, std::move(message));
}

// Checks one element against the datatype; appends it to values when wanted.
// Returns an empty string when fine, else the reason.
std::string check_element(const json::value& v, DataType type, bool keep, std::vector<float>& values) {
  double number = 0;
  switch (type) {
  case DataType::BOOL:
    if (!v.is_bool()) return "expected true or false";
    if (keep) values.push_back(v.get_bool() ? 1.0f : 0.0f);
    return {};
  case DataType::BYTES:
    if (!v.is_string()) return "expected a string";
    return {};
  default: break;
  }
  if (v.is_int64())
    number = static_cast<double>(v.get_int64());
  else if (v.is_uint64())
    number = static_cast<double>(v.get_uint64());
  else if (v.is_double())
    number = v.get_double();
  else
    return "expected a number";
  if (is_integer_type(type)) {
    if (v.is_double() && std::trunc(number) != number) return "expected an integer";
    if (!integer_in_range(type, number, v.is_uint64(), v.is_double()))
      return "out of range for " + std::string(to_string(type));
  } else if (type == DataType::FP32 || type == DataType::FP16) {
    if (std::fabs(number) > std::numeric_limits<float>::max())
      return "out of range for " + std::string(to_string(type));
  }
  if (keep) values.push_back(static_cast<float>(number));
  return {};
}

// Walks flat or nested data arrays (the v2 spec allows both), bounded by the tensor rank.
bool walk_data(const json::array& data, DataType type, bool keep, std::vector<float>& values,
               std::size_t depth, std::size_t max_depth, std::size_t& count, std::string& error,
               const std::string& field) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto& v = data[i];
    if (v.is_array()) {
      if (depth + 1 >= max_depth) {
        error = field + "[" + std::to_string(i) + "]: nested deeper than the tensor's rank";
        return false;
      }
      if (!walk_data(v.get_array(), type, keep, values, depth + 1, max_depth, count, error, field))
        return false;
      continue;
    }
    auto why = check_element(v, type, keep, values);
    if (!why.empty()) {
      error = field + "[" + std::to_string(count) + "]: " + why;
      return false;
    }
    ++count;
  }
  return true;
}

void append_number(std::string& out, double value, DataType type) {
  char buf[32];
  std::to_chars_result r{};
  if (is_integer_type(type)) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
  } else if (type == DataType::BOOL) {
    out += value != 0 ? "true" : "false";
    return;
  } else if (type == DataType::FP32 || type == DataType::FP16) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(value));
  } else {
    r = std::to_chars(buf, buf + sizeof buf, value);
  }
  out.append(buf, r.ptr);
}

void append_tensor_specs(std::string& out, const std::vector<TensorSpec>& specs) {
  out += '[';
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":\"" + json_escape(specs[i].name) + "\",\"datatype\":\"";
    out += to_string(specs[i].datatype);
    out += "\",\"shape\":[";
    for (std::size_t d = 0; d < specs[i].shape.size(); ++d) {
      if (d) out += ',';
      out += std::to_string(specs[i].shape[d]);
    }
    out += "]}";
  }
  out += ']';
}

} // namespace

std::string shape_to_string(const std::vector<std::int64_t>& shape, bool schema) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += (schema && shape[i] == -1) ? std::string("N") : std::to_string(shape[i]);
  }
  return out + "]";
}

bool is_integer_type(DataType t) {
  switch (t) {
  case DataType::UINT8:
  case DataType::UINT16:
  case DataType::UINT32:
  case DataType::UINT64:
  case DataType::INT8:
  case DataType::INT16:
  case DataType::INT32:
  case DataType::INT64: return true;
  default: return false;
  }
}

bool integer_in_range(DataType type, double number, bool is_uint64, bool is_double) {
  double min = 0;
  double max = 0;
  switch (type) {
  case DataType::UINT8: max = 255; break;
  case DataType::UINT16: max = 65535; break;
  case DataType::UINT32: max = 4294967295.0; break;
  case DataType::UINT64: max = 18446744073709551615.0; break;
  case DataType::INT8:
    min = -128;
    max = 127;
    break;
  case DataType::INT16:
    min = -32768;
    max = 32767;
    break;
  case DataType::INT32:
    min = -2147483648.0;
    max = 2147483647.0;
    break;
  default:
    min = -9223372036854775808.0;
    max = 9223372036854775807.0;
    break;
  }
  bool too_big = number > max;
  if (type == DataType::INT64)
    too_big = is_uint64 || (is_double && number >= 9223372036854775808.0);
  else if (type == DataType::UINT64)
    too_big = is_double && number >= 18446744073709551616.0;
  return number >= min && !too_big;
}

std::string json_escape(std::string_view text) {
  // Not json::serialize(): it passes bytes that are not UTF-8 through, and an error message
  // echoes what the client sent (an input name), so the body would not be JSON. Bad bytes
  // become U+FFFD.
  std::string quoted;
  append_json_string(quoted, text);
  return quoted.substr(1, quoted.size() - 2);
}

std::string quote_value(std::string_view text) {
  constexpr std::size_t limit = 64;
  if (text.size() <= limit) return "\"" + std::string(text) + "\"";
  return "\"" + std::string(text.substr(0, limit)) + "...\"";
}

Result<DecodedRequest> decode_infer_request(std::string_view body, const ModelSchema& schema,
                                            DecodeOptions options) {
  unsigned char buffer[4096];
  json::monotonic_resource resource(buffer);
  json::parse_options parse_opts;
  parse_opts.max_depth = 16;
  std::error_code ec;
  json::value root = json::parse(json::string_view(body.data(), body.size()), ec, &resource, parse_opts);
  if (ec) return make_error(ErrorCode::malformed_json, "malformed JSON: " + ec.message());
  if (!root.is_object()) return invalid("request body: expected a JSON object");
  const auto& obj = root.get_object();

  DecodedRequest out;
  if (const auto* id = obj.if_contains("id")) {
    if (!id->is_string()) return invalid("id: expected a string");
    if (id->get_string().size() > 256) return invalid("id: longer than 256 characters");
    out.id = std::string(id->get_string());
  }
  const auto* inputs_value = obj.if_contains("inputs");
  if (!inputs_value) return invalid("inputs: required");
  if (!inputs_value->is_array()) return invalid("inputs: expected an array");
  const auto& inputs = inputs_value->get_array();
  if (inputs.empty()) return invalid("inputs: must not be empty");

  out.inputs.resize(schema.inputs.size());
  std::vector<bool> seen(schema.inputs.size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string field = "inputs[" + std::to_string(i) + "]";
    if (!inputs[i].is_object()) return invalid(field + ": expected an object");
    const auto& in = inputs[i].get_object();
    const auto* name = in.if_contains("name");
    if (!name || !name->is_string()) return invalid(field + ".name: required string");
    std::string input_name(name->get_string());
    std::size_t index = schema.inputs.size();
    for (std::size_t s = 0; s < schema.inputs.size(); ++s)
      if (schema.inputs[s].name == input_name) index = s;
    if (index == schema.inputs.size()) {
      std::string known;
      for (const auto& t : schema.inputs) known += (known.empty() ? "" : ", ") + t.name;
      return invalid(field + ".name: unknown input " + quote_value(input_name) + " (expected: " + known +
                     ")");
    }
    if (seen[index]) return invalid(field + ".name: input \"" + input_name + "\" given twice");
    seen[index] = true;
    const TensorSpec& spec = schema.inputs[index];

    const auto* datatype = in.if_contains("datatype");
    if (!datatype || !datatype->is_string()) return invalid(field + ".datatype: required string");
    if (datatype->get_string() != to_string(spec.datatype))
      return invalid(
          field + ".datatype: expected \"" + std::string(to_string(spec.datatype)) + "\" for input \"" +
          spec.name + "\", got " +
          quote_value(std::string_view(datatype->get_string().data(), datatype->get_string().size())));

    const auto* shape_value = in.if_contains("shape");
    if (!shape_value || !shape_value->is_array())
      return invalid(field + ".shape: required array of integers");
    std::vector<std::int64_t> shape;
    for (const auto& d : shape_value->get_array()) {
      if (!d.is_int64() && !d.is_uint64()) return invalid(field + ".shape: expected integers");
      if (d.is_uint64() && d.get_uint64() > std::uint64_t{kMaxDimension})
        return invalid(field + ".shape: " + std::string(kDimensionTooLarge));
      std::int64_t dim = d.is_int64() ? d.get_int64() : static_cast<std::int64_t>(d.get_uint64());
      if (dim < 0) return invalid(field + ".shape: dimensions must be >= 0");
      if (dim > kMaxDimension) return invalid(field + ".shape: " + std::string(kDimensionTooLarge));
      shape.push_back(dim);
    }
    bool shape_ok = shape.size() == spec.shape.size();
    for (std::size_t d = 0; shape_ok && d < shape.size(); ++d)
      if (spec.shape[d] != -1 && spec.shape[d] != shape[d]) shape_ok = false;
    if (!shape_ok)
      return invalid(field + ".shape: expected " + shape_to_string(spec.shape, true) + " for input \"" +
                     spec.name + "\", got " + shape_to_string(shape, false));
    // Bounded so that no shape can overflow the count or ask for an absurd allocation.
    constexpr std::int64_t max_elements = std::int64_t{1} << 31;
    std::int64_t elements = 1;
    for (auto d : shape) {
      if (d > 0 && elements > max_elements / d)
        return invalid(field + ".shape: " + shape_to_string(shape, false) + " has more than " +
                       std::to_string(max_elements) + " elements");
      elements *= d;
    }
    if (schema.max_batch_size > 0 && !shape.empty()) {
      if (shape[0] < 1) return invalid(field + ".shape[0]: batch size must be at least 1");
      if (shape[0] > schema.max_batch_size)
        return invalid(field + ".shape[0]: batch size " + std::to_string(shape[0]) +
                       " exceeds the model's max_batch_size " + std::to_string(schema.max_batch_size));
      if (out.batch_size != 0 && out.batch_size != shape[0])
        return invalid(field + ".shape[0]: batch size differs from the other inputs");
      out.batch_size = shape[0];
    }

    const auto* data_value = in.if_contains("data");
    if (!data_value) return invalid(field + ".data: required");
    if (!data_value->is_array()) return invalid(field + ".data: expected an array");
    DecodedInput decoded;
    decoded.name = spec.name;
    decoded.spec = &spec;
    decoded.shape = std::move(shape);
    bool keep = options.keep_values;
    // Reserve no more than the data can hold: the shape is checked against it only below.
    if (keep)
      decoded.values.reserve(std::min(static_cast<std::size_t>(elements), data_value->get_array().size()));
    std::size_t count = 0;
    std::string error;
    if (!walk_data(data_value->get_array(), spec.datatype, keep, decoded.values, 0,
                   std::max<std::size_t>(spec.shape.size(), 1), count, error, field + ".data"))
      return invalid(error);
    if (static_cast<std::int64_t>(count) != elements)
      return invalid(field + ".data: has " + std::to_string(count) + " elements but shape " +
                     shape_to_string(decoded.shape, false) + " needs " + std::to_string(elements));
    out.inputs[index] = std::move(decoded);
  }
  for (std::size_t s = 0; s < schema.inputs.size(); ++s)
    if (!seen[s]) return invalid("inputs: missing input \"" + schema.inputs[s].name + "\"");

  if (const auto* outputs = obj.if_contains("outputs")) {
    if (!outputs->is_array()) return invalid("outputs: expected an array");
    const auto& list = outputs->get_array();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string field = "outputs[" + std::to_string(i) + "]";
      if (!list[i].is_object()) return invalid(field + ": expected an object");
      const auto* name = list[i].get_object().if_contains("name");
      if (!name || !name->is_string()) return invalid(field + ".name: required string");
      std::string output_name(name->get_string());
      if (!schema.find_output(output_name))
        return invalid(field + ".name: unknown output " + quote_value(output_name));
      out.requested_outputs.push_back(std::move(output_name));
    }
  }
  return out;
}

std::string encode_infer_response(std::string_view model_name, std::string_view model_version,
                                  std::string_view id, const std::vector<OutputTensor>& outputs) {
  std::size_t estimate = 128;
  for (const auto& o : outputs) estimate += 64 + o.values.size() * 14;
  std::string out;
  out.reserve(estimate);
  out += "{\"model_name\":\"" + json_escape(model_name) + "\",\"model_version\":\"" +
         json_escape(model_version) + "\"";
  if (!id.empty()) out += ",\"id\":\"" + json_escape(id) + "\"";
  out += ",\"outputs\":[";
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& o = outputs[i];
    if (i) out += ',';
    out += "{\"name\":\"" + json_escape(o.name) + "\",\"datatype\":\"";
    out += to_string(o.datatype);
    out += "\",\"shape\":[";
    for (std::size_t d = 0; d < o.shape.size(); ++d) {
      if (d) out += ',';
      out += std::to_string(o.shape[d]);
    }
    out += "],\"data\":[";
    for (std::size_t k = 0; k < o.values.size(); ++k) {
      if (k) out += ',';
      append_number(out, o.values[k], o.datatype);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

std::string encode_error(std::string_view message) {
  return "{\"error\":\"" + json_escape(message) + "\"}";
}

std::string encode_model_metadata(std::string_view name, std::string_view version, std::string_view platform,
                                  const ModelSchema& schema) {
  std::string out = "{\"name\":\"" + json_escape(name) + "\",\"versions\":[\"" + json_escape(version) +
                    "\"],\"platform\":\"" + json_escape(platform) + "\",\"inputs\":";
  append_tensor_specs(out, schema.inputs);
  out += ",\"outputs\":";
  append_tensor_specs(out, schema.outputs);
  out += '}';
  return out;
}

} // namespace tandem::v2
