#include "protocol/v2_validator.hpp"

#include "base/json_text.hpp"
#include "protocol/v2_codec.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

namespace tandem::v2 {
namespace {

constexpr int kMaxDepth = 16; // as the DOM decoder's parse_options.max_depth

// <cctype>'s functions are out-of-line calls through the locale table: far too slow per byte.
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
// One comparison for the common case (any printable character is not whitespace).
inline bool is_space(char c) {
  return static_cast<unsigned char>(c) <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}
inline bool is_hex_digit(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

Error invalid(std::string message) {
  return make_error(ErrorCode::invalid_request, std::move(message));
}

// A number token: its text and what the grammar saw.
struct NumberToken {
  std::string_view text;
  bool plain_integer = true; // no fraction, no exponent
  bool negative = false;
  bool has_exponent = false;
  std::size_t int_digits = 0; // digits before the point
};

// Everything the DOM decoder looks at in one input object, gathered in document order and
// judged afterwards in the decoder's order.
struct InputFacts {
  enum class Kind { absent, string, other };
  bool is_object = false;
  Kind name = Kind::absent;
  std::string name_value;
  Kind datatype = Kind::absent;
  std::string datatype_value;
  bool shape_present = false;
  bool shape_is_array = false;
  std::string shape_error; // "expected integers" / "dimensions must be >= 0"
  // Inline room for the usual ranks and input counts: the validator runs on every request, and
  // each std::vector here was a malloc and a free.
  boost::container::small_vector<std::int64_t, 8> shape;
  bool data_present = false;
  bool data_is_array = false;
  const char* data_begin = nullptr; // the data array, to scan once datatype and shape are known
  const char* data_end = nullptr;
  bool data_scanned = false; // already walked in the first pass (name and datatype came first)
  std::size_t data_count = 0;
  std::string data_error;
};

struct OutputFacts {
  bool is_object = false;
  InputFacts::Kind name = InputFacts::Kind::absent;
  std::string name_value;
};

class Scanner {
public:
  Scanner(const char* begin, const char* end) : p_(begin), begin_(begin), end_(end) {}

  // Sets the first syntax error; later ones are ignored.
  bool fail(const char* what) {
    if (error_.empty()) error_ = std::string(what) + " at offset " + std::to_string(p_ - begin_);
    p_ = end_;
    return false;
  }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] bool at_end() {
    ws();
    return p_ == end_;
  }

  void ws() {
    const char* p = p_;
    while (p < end_ && is_space(*p)) ++p;
    p_ = p;
  }
  bool peek(char c) {
    ws();
    return p_ < end_ && *p_ == c;
  }
  bool consume(char c) {
    if (!peek(c)) return false;
    ++p_;
    return true;
  }
  const char* position() const { return p_; }
  // The byte at the cursor, or NUL at the end: never a read past the body.
  [[nodiscard]] char current() const { return p_ < end_ ? *p_ : '\0'; }
  void seek(const char* at) { p_ = at; }
  [[nodiscard]] const char* end() const { return end_; }

  // A string; unescaped into `out` when given. Text must be valid UTF-8, as the worker's
  // decoder requires: a body the gateway accepts is one the worker accepts.
  bool string(std::string* out) {
    if (!consume('"')) return fail("expected a string");
    const char* start = p_;
    bool escaped = false;
    for (;;) {
      const char* q = static_cast<const char*>(std::memchr(p_, '"', static_cast<std::size_t>(end_ - p_)));
      // Control characters and backslashes need a closer look; scan the run up to the quote.
      const char* stop = q == nullptr ? end_ : q;
      for (const char* c = p_; c < stop; ++c) {
        unsigned char u = static_cast<unsigned char>(*c);
        if (u < 0x20) {
          p_ = c;
          return fail("control character in string");
        }
        if (u >= 0x80) {
          const std::size_t n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(c),
                                                     static_cast<std::size_t>(stop - c));
          if (n == 0) {
            p_ = c;
            return fail("invalid UTF-8 in string");
          }
          c += n - 1;
          continue;
        }
        if (u == '\\') {
          escaped = true;
          p_ = c + 1;
          if (p_ >= end_) return fail("unterminated string");
          char e = *p_;
          if (e == 'u') {
            if (end_ - p_ < 5) return fail("bad \\u escape");
            for (int k = 1; k <= 4; ++k)
              if (!is_hex_digit(p_[k])) return fail("bad \\u escape");
            c = p_ + 4;
          } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                     e == 't') {
            c = p_;
          } else {
            return fail("bad escape");
          }
          // The quote found by memchr may have been escaped: search again from here.
          p_ = c + 1;
          goto next_run;
        }
      }
      if (q == nullptr) return fail("unterminated string");
      if (out != nullptr) {
        if (!escaped)
          out->assign(start, q);
        else
          unescape(start, q, *out);
      }
      p_ = q + 1;
      return true;
    next_run:;
    }
  }

  // A string without escapes or control characters (object keys nearly always) is viewed where
  // it lies: no copy, and no library call for a few bytes. Anything else goes through string(),
  // from the opening quote, so errors read exactly the same; `storage` then holds the text.
  bool view_string(std::string_view& out, std::string& storage) {
    if (!consume('"')) return fail("expected a string");
    for (const char* p = p_; p < end_; ++p) {
      const auto u = static_cast<unsigned char>(*p);
      if (u == '"') {
        out = std::string_view(p_, static_cast<std::size_t>(p - p_));
        p_ = p + 1;
        return true;
      }
      if (u == '\\' || u < 0x20 || u >= 0x80) break;
    }
    --p_;
    if (!string(&storage)) return false;
    out = storage;
    return true;
  }

  bool number(NumberToken& token) {
    ws();
    // Local pointers: a char read may alias the member pointer, which would force a reload
    // and a store per byte.
    const char* p = p_;
    const char* const e = end_;
    const char* const start = p;
    token.negative = false;
    token.plain_integer = true;
    token.has_exponent = false;
    if (p < e && *p == '-') {
      token.negative = true;
      ++p;
    }
    if (p >= e || !is_digit(*p)) return fail_at(p, "invalid number");
    const char* int_start = p;
    if (*p == '0') {
      ++p;
    } else {
      while (p < e && is_digit(*p)) ++p;
    }
    token.int_digits = static_cast<std::size_t>(p - int_start);
    if (p < e && *p == '.') {
      token.plain_integer = false;
      ++p;
      if (p >= e || !is_digit(*p)) return fail_at(p, "invalid number");
      while (p < e && is_digit(*p)) ++p;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
      token.plain_integer = false;
      token.has_exponent = true;
      ++p;
      if (p < e && (*p == '+' || *p == '-')) ++p;
      if (p >= e || !is_digit(*p)) return fail_at(p, "invalid number");
      while (p < e && is_digit(*p)) ++p;
    }
    token.text = std::string_view(start, static_cast<std::size_t>(p - start));
    p_ = p;
    return true;
  }

  bool fail_at(const char* at, const char* what) {
    p_ = at;
    return fail(what);
  }

  bool literal(std::string_view word) {
    ws();
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return fail("invalid literal");
    p_ += word.size();
    return true;
  }

  // Any JSON value, checked for syntax only.
  bool skip_value(int depth) {
    if (depth > kMaxDepth) return fail("too deep");
    ws();
    if (p_ >= end_) return fail("unexpected end of input");
    switch (*p_) {
    case '{': {
      ++p_;
      if (consume('}')) return true;
      do {
        if (!string(nullptr)) return false;
        if (!consume(':')) return fail("expected ':'");
        if (!skip_value(depth + 1)) return false;
      } while (consume(','));
      return consume('}') || fail("expected ',' or '}'");
    }
    case '[': {
      ++p_;
      if (consume(']')) return true;
      do {
        if (!skip_value(depth + 1)) return false;
      } while (consume(','));
      return consume(']') || fail("expected ',' or ']'");
    }
    case '"': return string(nullptr);
    case 't': return literal("true");
    case 'f': return literal("false");
    case 'n': return literal("null");
    default: {
      NumberToken t;
      return number(t);
    }
    }
  }

private:
  static void unescape(const char* from, const char* to, std::string& out) {
    out.clear();
    for (const char* c = from; c < to; ++c) {
      if (*c != '\\') {
        out += *c;
        continue;
      }
      ++c;
      switch (*c) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        unsigned code = 0;
        std::from_chars(c + 1, c + 5, code, 16);
        c += 4;
        // Names are compared to the schema's ASCII names; anything else just must not match.
        if (code < 0x80)
          out += static_cast<char>(code);
        else
          out += "\xEF\xBF\xBD";
        break;
      }
      default: out += *c;
      }
    }
  }

  const char* p_;
  const char* begin_;
  const char* end_;
  std::string error_;
};

// Walks a data array exactly as the DOM decoder's walk_data does, reporting the same first
// error. `count` is the number of valid leaves so far.
class DataWalker {
public:
  // `input` is the input's index, for error messages ("inputs[N].data[...]").
  DataWalker(Scanner& s, DataType type, std::size_t max_depth, std::size_t input) :
      s_(s), type_(type), max_depth_(max_depth), input_(input),
      float_type_(type == DataType::FP32 || type == DataType::FP16 || type == DataType::FP64),
      check_float_range_(type == DataType::FP32 || type == DataType::FP16) {}

  // `s` is positioned at '['. Returns false on a syntax error (in the scanner) or a semantic
  // one (in `error`).
  bool walk(std::size_t depth) {
    s_.consume('[');
    if (s_.consume(']')) return true;
    std::size_t index = 0;
    for (;;) {
      if (float_type_) {
        switch (fast_numbers(index)) {
        case Run::closed: return true;
        case Run::failed: return false;
        case Run::other: break; // the element at the cursor is not a number
        }
      }
      if (s_.peek('[')) {
        if (depth + 1 >= max_depth_) {
          error = field() + "[" + std::to_string(index) + "]: nested deeper than the tensor's rank";
          return false;
        }
        if (depth + 1 > kMaxDepth) return s_.fail("too deep");
        if (!walk(depth + 1)) return false;
      } else {
        std::string why;
        if (!leaf(why)) return false;
        if (!why.empty()) {
          error = field() + "[" + std::to_string(count) + "]: " + why;
          return false;
        }
        ++count;
      }
      ++index;
      if (s_.consume(',')) continue;
      return s_.consume(']') || s_.fail("expected ',' or ']'");
    }
  }

  std::size_t count = 0;
  std::string error;

private:
  enum class Run { closed, failed, other };

  // Built only for an error message: every request used to pay for the string.
  [[nodiscard]] std::string field() const { return "inputs[" + std::to_string(input_) + "].data"; }

  // The hot loop for float tensors: a run of numbers and commas, scanned with local pointers.
  // Stops at the closing bracket (closed), at an element that is not a number (other: the
  // cursor is left on it), or at an error (failed).
  Run fast_numbers(std::size_t& index) {
    const char* p = s_.position();
    const char* const e = s_.end();
    auto skip_ws = [&] {
      while (p < e && is_space(*p)) ++p;
    };
    // Elements before this go one at a time: the block scanner turned down the block here, and
    // retrying it on every element (say, a run of exponents) would cost more than it saves.
    const detail::NumberRunScanner scanner = detail::number_run_scanner();
    const char* one_at_a_time_until = scanner == nullptr ? e : p;
    for (;;) {
      // Without a block scanner (the byte-at-a-time build), one_at_a_time_until is the end, and
      // p reaches it when a body ends inside the data array: there is nothing to scan then, and
      // calling the null scanner crashed.
      if (scanner != nullptr && p >= one_at_a_time_until) {
        std::size_t elements = 0;
        p = scanner(p, e, check_float_range_, elements);
        count += elements;
        index += elements;
        one_at_a_time_until =
            static_cast<std::size_t>(e - p) > detail::kNumberBlockBytes ? p + detail::kNumberBlockBytes : e;
      }
      skip_ws();
      const char* const t = p;
      if (p < e && *p == '-') ++p;
      if (p >= e || !is_digit(*p)) {
        s_.seek(t);
        return Run::other;
      }
      const char* const digits = p;
      if (*p == '0')
        ++p;
      else
        while (p < e && is_digit(*p)) ++p;
      const std::size_t int_digits = static_cast<std::size_t>(p - digits);
      bool exponent = false;
      if (p < e && *p == '.') {
        ++p;
        if (p >= e || !is_digit(*p)) return fail_at(p, "invalid number");
        while (p < e && is_digit(*p)) ++p;
      }
      if (p < e && (*p == 'e' || *p == 'E')) {
        exponent = true;
        ++p;
        if (p < e && (*p == '+' || *p == '-')) ++p;
        if (p >= e || !is_digit(*p)) return fail_at(p, "invalid number");
        while (p < e && is_digit(*p)) ++p;
      }
      if (check_float_range_ && (exponent || int_digits > 38)) {
        NumberToken token;
        token.text = std::string_view(t, static_cast<std::size_t>(p - t));
        token.negative = *t == '-';
        token.plain_integer = false;
        if (std::fabs(to_double(token)) > std::numeric_limits<float>::max()) {
          error =
              field() + "[" + std::to_string(count) + "]: out of range for " + std::string(to_string(type_));
          s_.seek(p);
          return Run::failed;
        }
      }
      ++count;
      ++index;
      skip_ws();
      if (p < e && *p == ',') {
        ++p;
        continue;
      }
      if (p < e && *p == ']') {
        s_.seek(p + 1);
        return Run::closed;
      }
      return fail_at(p, "expected ',' or ']'");
    }
  }

  Run fail_at(const char* at, const char* what) {
    s_.seek(at);
    s_.fail(what);
    return Run::failed;
  }

  // Reads one non-array value; sets `why` when it does not fit the datatype.
  bool leaf(std::string& why) {
    s_.ws();
    const char c = s_.current();
    if (c == '"') {
      if (!s_.string(nullptr)) return false;
      if (type_ != DataType::BYTES)
        why = type_ == DataType::BOOL ? "expected true or false" : "expected a number";
      return true;
    }
    if (c == 't' || c == 'f') {
      if (!s_.literal(c == 't' ? "true" : "false")) return false;
      if (type_ != DataType::BOOL) why = type_ == DataType::BYTES ? "expected a string" : "expected a number";
      return true;
    }
    if (c == 'n' || c == '{') {
      if (!s_.skip_value(2)) return false;
      why = type_ == DataType::BOOL    ? "expected true or false"
            : type_ == DataType::BYTES ? "expected a string"
                                       : "expected a number";
      return true;
    }
    NumberToken t;
    if (!s_.number(t)) return false;
    if (type_ == DataType::BOOL) {
      why = "expected true or false";
    } else if (type_ == DataType::BYTES) {
      why = "expected a string";
    } else if (is_integer_type(type_)) {
      why = check_integer(t);
    } else if ((type_ == DataType::FP32 || type_ == DataType::FP16) && could_exceed_float(t)) {
      double v = to_double(t);
      if (std::fabs(v) > std::numeric_limits<float>::max())
        why = "out of range for " + std::string(to_string(type_));
    }
    return true;
  }

  static bool could_exceed_float(const NumberToken& t) {
    // |x| <= FLT_MAX (3.4e38) holds for any token with at most 38 digits before the point and
    // no exponent; only the rest needs converting.
    return t.has_exponent || t.int_digits > 38;
  }

  static double to_double(const NumberToken& t) {
    double v = 0;
    auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow to infinity, underflow to zero, as a JSON parser does.
      bool tiny = t.text.find("e-") != std::string_view::npos || t.text.find("E-") != std::string_view::npos;
      return tiny ? 0.0 : (t.negative ? -HUGE_VAL : HUGE_VAL);
    }
    return v;
  }

  std::string check_integer(const NumberToken& t) const {
    // Mirrors the DOM decoder: the value decides (2.0 is an integer), 64-bit limits by kind.
    std::string range_error = "out of range for " + std::string(to_string(type_));
    if (t.plain_integer) {
      if (t.negative) {
        std::int64_t v = 0;
        auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (r.ec != std::errc{}) {
          // Below INT64_MIN: the DOM holds it as a double, judged like any double.
          double d = to_double(t);
          return integer_in_range(type_, d, false, true) ? std::string() : range_error;
        }
        return integer_in_range(type_, static_cast<double>(v), false, false) ? std::string() : range_error;
      }
      std::uint64_t v = 0;
      auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      if (r.ec != std::errc{}) {
        // Above UINT64_MAX: a double >= 2^64, out of range for every integer type.
        return range_error;
      }
      bool is_uint64 = v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      return integer_in_range(type_, static_cast<double>(v), is_uint64, false) ? std::string() : range_error;
    }
    double v = to_double(t);
    if (std::trunc(v) != v) return "expected an integer";
    return integer_in_range(type_, v, false, true) ? std::string() : range_error;
  }

  Scanner& s_;
  DataType type_;
  std::size_t max_depth_;
  std::size_t input_;
  bool float_type_;
  bool check_float_range_;
};

} // namespace

Result<ValidatedRequest> validate_infer_request(std::string_view body, const ModelSchema& schema) {
  Scanner s(body.data(), body.data() + body.size());
  auto malformed = [&]() { return make_error(ErrorCode::malformed_json, "malformed JSON: " + s.error()); };

  // Pass over the document: syntax, and the facts the decoder's checks need.
  enum class Kind { absent, array, other };
  bool root_is_object = s.peek('{');
  Kind id_kind = Kind::absent;
  std::string id;
  Kind inputs_kind = Kind::absent;
  Kind outputs_kind = Kind::absent;
  boost::container::small_vector<InputFacts, 2> inputs;
  boost::container::small_vector<OutputFacts, 2> outputs;

  auto object_members = [&](auto&& on_key) -> bool {
    // At '{'. Calls on_key(key) positioned at the value; on_key must consume the value.
    s.consume('{');
    if (s.consume('}')) return true;
    std::string key_storage; // only for a key with escapes
    do {
      std::string_view key;
      if (!s.view_string(key, key_storage)) return false;
      if (!s.consume(':')) return s.fail("expected ':'");
      if (!on_key(key)) return false;
    } while (s.consume(','));
    return s.consume('}') || s.fail("expected ',' or '}'");
  };

  auto read_input = [&](InputFacts& f, std::size_t index) -> bool {
    f.is_object = true;
    return object_members([&](std::string_view key) -> bool {
      if (key == "name" || key == "datatype") {
        auto& kind = key == "name" ? f.name : f.datatype;
        auto& value = key == "name" ? f.name_value : f.datatype_value;
        if (s.peek('"')) {
          kind = InputFacts::Kind::string;
          return s.string(&value);
        }
        kind = InputFacts::Kind::other;
        return s.skip_value(3);
      }
      if (key == "shape") {
        f.shape_present = true;
        f.shape.clear();
        f.shape_error.clear();
        if (!s.peek('[')) {
          f.shape_is_array = false;
          return s.skip_value(3);
        }
        f.shape_is_array = true;
        s.consume('[');
        if (s.consume(']')) return true;
        do {
          s.ws();
          const char c = s.current();
          if (c == '-' || is_digit(c)) {
            NumberToken t;
            if (!s.number(t)) return false;
            if (!t.plain_integer) {
              if (f.shape_error.empty()) f.shape_error = "expected integers";
              continue;
            }
            std::int64_t dim = 0;
            auto r = std::from_chars(t.text.data(), t.text.data() + t.text.size(), dim);
            if (r.ec != std::errc{}) {
              // Beyond int64: the DOM holds it as a uint64 (a dimension far too large) when it
              // fits one, else as a double (not an integer).
              std::uint64_t big = 0;
              bool fits_u64 =
                  !t.negative &&
                  std::from_chars(t.text.data(), t.text.data() + t.text.size(), big).ec == std::errc{};
              if (f.shape_error.empty())
                f.shape_error = fits_u64 ? std::string(v2::kDimensionTooLarge) : "expected integers";
              continue;
            }
            if (f.shape_error.empty() && dim < 0) f.shape_error = "dimensions must be >= 0";
            if (f.shape_error.empty() && dim > v2::kMaxDimension) f.shape_error = v2::kDimensionTooLarge;
            f.shape.push_back(dim);
          } else {
            if (!s.skip_value(4)) return false;
            if (f.shape_error.empty()) f.shape_error = "expected integers";
          }
        } while (s.consume(','));
        return s.consume(']') || s.fail("expected ',' or ']'");
      }
      if (key == "data") {
        f.data_present = true;
        f.data_is_array = s.peek('[');
        s.ws();
        f.data_begin = s.position();
        // Usually name and datatype come first: then check the data in this same pass.
        const TensorSpec* spec =
            f.name == InputFacts::Kind::string ? schema.find_input(f.name_value) : nullptr;
        if (f.data_is_array && spec != nullptr && f.datatype == InputFacts::Kind::string &&
            f.datatype_value == to_string(spec->datatype)) {
          DataWalker walker(s, spec->datatype, std::max<std::size_t>(spec->shape.size(), 1), index);
          if (walker.walk(0)) {
            f.data_scanned = true;
            f.data_count = walker.count;
            f.data_end = s.position();
            return true;
          }
          if (!s.error().empty()) return false; // a syntax error
          // A semantic error stops the walk: keep it, and skip the rest for syntax.
          f.data_scanned = true;
          f.data_error = std::move(walker.error);
          s.seek(f.data_begin);
        }
        if (!s.skip_value(3)) return false;
        f.data_end = s.position();
        return true;
      }
      return s.skip_value(3);
    });
  };

  bool ok = true;
  if (!root_is_object) {
    ok = s.skip_value(0);
  } else {
    ok = object_members([&](std::string_view key) -> bool {
      if (key == "id") {
        if (s.peek('"')) {
          id_kind = Kind::other; // a string
          return s.string(&id);
        }
        id_kind = Kind::array; // not a string
        return s.skip_value(1);
      }
      if (key == "inputs") {
        inputs.clear();
        if (!s.peek('[')) {
          inputs_kind = Kind::other;
          return s.skip_value(1);
        }
        inputs_kind = Kind::array;
        s.consume('[');
        if (s.consume(']')) return true;
        do {
          inputs.emplace_back();
          if (s.peek('{')) {
            if (!read_input(inputs.back(), inputs.size() - 1)) return false;
          } else {
            if (!s.skip_value(2)) return false;
          }
        } while (s.consume(','));
        return s.consume(']') || s.fail("expected ',' or ']'");
      }
      if (key == "outputs") {
        outputs.clear();
        if (!s.peek('[')) {
          outputs_kind = Kind::other;
          return s.skip_value(1);
        }
        outputs_kind = Kind::array;
        s.consume('[');
        if (s.consume(']')) return true;
        do {
          outputs.emplace_back();
          auto& o = outputs.back();
          if (!s.peek('{')) {
            if (!s.skip_value(2)) return false;
            continue;
          }
          o.is_object = true;
          if (!object_members([&](std::string_view k) -> bool {
                if (k != "name") return s.skip_value(3);
                if (s.peek('"')) {
                  o.name = InputFacts::Kind::string;
                  return s.string(&o.name_value);
                }
                o.name = InputFacts::Kind::other;
                return s.skip_value(3);
              }))
            return false;
        } while (s.consume(','));
        return s.consume(']') || s.fail("expected ',' or ']'");
      }
      return s.skip_value(1);
    });
  }
  if (!ok || !s.error().empty()) return malformed();
  if (!s.at_end()) {
    s.fail("extra data after the document");
    return malformed();
  }

  // Judgement, in the order of decode_infer_request.
  if (!root_is_object) return invalid("request body: expected a JSON object");
  ValidatedRequest out;
  if (id_kind == Kind::array) return invalid("id: expected a string");
  if (id.size() > 256) return invalid("id: longer than 256 characters");
  out.id = std::move(id);
  if (inputs_kind == Kind::absent) return invalid("inputs: required");
  if (inputs_kind == Kind::other) return invalid("inputs: expected an array");
  if (inputs.empty()) return invalid("inputs: must not be empty");

  boost::container::small_vector<bool, 8> seen(schema.inputs.size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    // Named only in an error message: building it cost every request a string.
    const auto field = [i] { return "inputs[" + std::to_string(i) + "]"; };
    const auto& f = inputs[i];
    if (!f.is_object) return invalid(field() + ": expected an object");
    if (f.name != InputFacts::Kind::string) return invalid(field() + ".name: required string");
    std::size_t index = schema.inputs.size();
    for (std::size_t k = 0; k < schema.inputs.size(); ++k)
      if (schema.inputs[k].name == f.name_value) index = k;
    if (index == schema.inputs.size()) {
      std::string known;
      for (const auto& t : schema.inputs) known += (known.empty() ? "" : ", ") + t.name;
      return invalid(field() + ".name: unknown input " + quote_value(f.name_value) + " (expected: " + known +
                     ")");
    }
    if (seen[index]) return invalid(field() + ".name: input \"" + f.name_value + "\" given twice");
    seen[index] = true;
    const TensorSpec& spec = schema.inputs[index];
    if (f.datatype != InputFacts::Kind::string) return invalid(field() + ".datatype: required string");
    if (f.datatype_value != to_string(spec.datatype))
      return invalid(field() + ".datatype: expected \"" + std::string(to_string(spec.datatype)) +
                     "\" for input \"" + spec.name + "\", got " + quote_value(f.datatype_value));
    if (!f.shape_present || !f.shape_is_array) return invalid(field() + ".shape: required array of integers");
    if (!f.shape_error.empty()) return invalid(field() + ".shape: " + f.shape_error);
    bool shape_ok = f.shape.size() == spec.shape.size();
    for (std::size_t d = 0; shape_ok && d < f.shape.size(); ++d)
      if (spec.shape[d] != -1 && spec.shape[d] != f.shape[d]) shape_ok = false;
    if (!shape_ok)
      return invalid(field() + ".shape: expected " + shape_to_string(spec.shape, true) + " for input \"" +
                     spec.name + "\", got " +
                     shape_to_string(std::vector<std::int64_t>(f.shape.begin(), f.shape.end()), false));
    constexpr std::int64_t max_elements = std::int64_t{1} << 31;
    std::int64_t elements = 1;
    for (auto d : f.shape) {
      if (d > 0 && elements > max_elements / d)
        return invalid(field() + ".shape: " +
                       shape_to_string(std::vector<std::int64_t>(f.shape.begin(), f.shape.end()), false) +
                       " has more than " + std::to_string(max_elements) + " elements");
      elements *= d;
    }
    if (schema.max_batch_size > 0 && !f.shape.empty()) {
      if (f.shape[0] < 1) return invalid(field() + ".shape[0]: batch size must be at least 1");
      if (f.shape[0] > schema.max_batch_size)
        return invalid(field() + ".shape[0]: batch size " + std::to_string(f.shape[0]) +
                       " exceeds the model's max_batch_size " + std::to_string(schema.max_batch_size));
      if (out.batch_size != 0 && out.batch_size != f.shape[0])
        return invalid(field() + ".shape[0]: batch size differs from the other inputs");
      out.batch_size = f.shape[0];
    }
    if (!f.data_present) return invalid(field() + ".data: required");
    if (!f.data_is_array) return invalid(field() + ".data: expected an array");
    std::size_t count = f.data_count;
    if (!f.data_scanned) {
      Scanner data(f.data_begin, f.data_end);
      DataWalker walker(data, spec.datatype, std::max<std::size_t>(spec.shape.size(), 1), i);
      if (!walker.walk(0)) {
        if (!walker.error.empty()) return invalid(walker.error);
        return make_error(ErrorCode::malformed_json, "malformed JSON: " + data.error());
      }
      count = walker.count;
    } else if (!f.data_error.empty()) {
      return invalid(f.data_error);
    }
    if (static_cast<std::int64_t>(count) != elements)
      return invalid(field() + ".data: has " + std::to_string(count) + " elements but shape " +
                     shape_to_string(std::vector<std::int64_t>(f.shape.begin(), f.shape.end()), false) +
                     " needs " + std::to_string(elements));
  }
  for (std::size_t k = 0; k < schema.inputs.size(); ++k)
    if (!seen[k]) return invalid("inputs: missing input \"" + schema.inputs[k].name + "\"");

  if (outputs_kind == Kind::other) return invalid("outputs: expected an array");
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto field = [i] { return "outputs[" + std::to_string(i) + "]"; };
    const auto& o = outputs[i];
    if (!o.is_object) return invalid(field() + ": expected an object");
    if (o.name != InputFacts::Kind::string) return invalid(field() + ".name: required string");
    if (!schema.find_output(o.name_value))
      return invalid(field() + ".name: unknown output " + quote_value(o.name_value));
    out.requested_outputs.push_back(o.name_value);
  }
  return out;
}

} // namespace tandem::v2
