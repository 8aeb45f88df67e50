// Runs of plain numbers in a float tensor, checked many bytes at a time (see number_scan.hpp).
#include "protocol/number_scan.hpp"

#include <bit>
#include <cstdint>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
// g++ 12's AVX-512 intrinsics start some results from a self-initialised "undefined" value,
// which -Wmaybe-uninitialized reports wherever they are inlined (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#define TANDEM_NUMBER_SCAN_X86 1
#endif

namespace tandem::v2::detail {
namespace {

// ---- 64 bytes at a time ---------------------------------------------------------------------
//
// Nearly all of a large float tensor is a run like `0.807843,0.529412,...`. Checked a byte at a
// time that costs ~11 instructions a byte (~15 M for a 150 000-value image). Instead, each
// 64-byte block is classified with SIMD compares into one bit mask per character class, and the
// number grammar is checked on the masks with shifts and ANDs: a few instructions a byte.
//
// The block check accepts only whole elements `-?(0|[1-9][0-9]*)(\.[0-9]+)?` each followed by a
// comma, with whitespace allowed only after a comma. Anything else (an exponent, a closing
// bracket, whitespace before a comma, a syntax error) ends the accepted part, and the
// element-at-a-time loop in DataWalker takes over from there: it reports every error exactly
// as before, so the block check never has to produce one.

constexpr std::size_t kBlockBytes = kNumberBlockBytes;

// Bit i describes byte i of the block.
struct BlockMasks {
  std::uint64_t digit = 0;
  std::uint64_t zero = 0;
  std::uint64_t comma = 0;
  std::uint64_t dot = 0;
  std::uint64_t minus = 0;
  std::uint64_t space = 0; // ' ', '\t', '\n', '\r'
};

// Returns how many bytes at the block's start are complete, valid elements (0: none), and adds
// them to `elements`. The block must start where an element may start: after '[' or ',', or
// after whitespace that follows one.
inline std::size_t accept_block(const BlockMasks& m, bool reject_long_numbers, std::size_t& elements) {
  const std::uint64_t known = m.digit | m.comma | m.dot | m.minus | m.space;
  const std::uint64_t before_unknown = known & ~(known + 1); // the bytes before the first other one
  const std::uint64_t comma = m.comma & before_unknown;
  if (comma == 0) return 0;
  // Accept up to the last comma: every element before it is complete.
  const int last = 63 - std::countl_zero(comma);
  const std::uint64_t last_bit = std::uint64_t{1} << last;
  const std::uint64_t region = last_bit | (last_bit - 1);
  const std::uint64_t digit = m.digit & region;
  const std::uint64_t dot = m.dot & region;
  const std::uint64_t minus = m.minus & region;
  const std::uint64_t space = m.space & region;
  const std::uint64_t token = digit | dot | minus;
  const std::uint64_t token_start = token & ~(token << 1);
  const std::uint64_t integer_start = (token_start & digit) | (minus << 1);
  // Each term marks the bytes that break one rule; inside the region every byte is one of the
  // classes above, so these rules are the whole grammar.
  std::uint64_t bad = (space & ~(((comma | space) << 1) | 1))      // whitespace only after a comma
                      | (comma & ~(token << 1))                    // a number before every comma
                      | (token_start & dot)                        // begins with a digit or '-'
                      | (minus & ~token_start)                     // '-' only first,
                      | ((minus << 1) & ~digit)                    // and a digit after it
                      | ((dot << 1) & ~digit)                      // digits after the point
                      | (((integer_start & m.zero) << 1) & digit); // no leading zero
  // A digit before the point needs no rule of its own: anything else there ('-', a point, a
  // comma, whitespace, the block's start) already breaks one above.
  // One point per number: the digit run after a point must not end at another point. Adding
  // the bit after each point to `digit` carries through that run to the byte after it.
  bad |= ((digit + (dot << 1)) & ~digit) & dot;
  // FP32 and FP16 need a range check above 38 integer digits (see could_exceed_float): any run
  // of 39 digits sends the block to the element loop, which converts such numbers. Such a run
  // in 64 bytes always covers bytes 25 to 38, so look for one only when those are all digits.
  constexpr std::uint64_t middle = std::uint64_t{0x3fff} << 25;
  if (reject_long_numbers && (digit & middle) == middle) {
    std::uint64_t run = digit; // bit i: bytes i .. i+k-1 are all digits, k doubling
    run &= run >> 1;
    run &= run >> 2;
    run &= run >> 4;
    run &= run >> 8;
    run &= run >> 16;
    bad |= run & (run >> 7); // 32 and 7 more: 39 digits
  }
  if (bad != 0) return 0;
  elements += static_cast<std::size_t>(std::popcount(comma));
  return static_cast<std::size_t>(last) + 1;
}

// Accepts blocks while they hold complete elements; returns where it stopped. Its callers are
// compiled once per instruction set (flatten inlines the classifier into each).
template <class Classifier>
inline const char* scan_number_blocks(const char* p, const char* e, bool reject_long_numbers,
                                      std::size_t& elements) {
  while (static_cast<std::size_t>(e - p) >= kBlockBytes) {
    const std::size_t accepted = accept_block(Classifier::classify(p), reject_long_numbers, elements);
    if (accepted == 0) break;
    p += accepted;
  }
  return p;
}

#ifdef TANDEM_NUMBER_SCAN_X86
// The classifiers are written out per 16- or 32-byte part rather than as loops: the compiler
// keeps such loops rolled, paying a variable shift and a loop test per mask.

struct Sse2Classifier {
  static std::uint64_t bits(__m128i v) { return static_cast<std::uint32_t>(_mm_movemask_epi8(v)); }
  static std::uint64_t join(__m128i a, __m128i b, __m128i c, __m128i d) {
    return bits(a) | (bits(b) << 16) | (bits(c) << 32) | (bits(d) << 48);
  }
  // x - '0' as an unsigned byte is below 10 exactly for the digits.
  static __m128i digit(__m128i x) {
    const __m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
    return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
  }
  static __m128i is(__m128i x, char c) { return _mm_cmpeq_epi8(x, _mm_set1_epi8(c)); }
  static __m128i low(__m128i x) { return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(' ')), x); }
  static __m128i space(__m128i x) {
    return _mm_or_si128(_mm_or_si128(is(x, ' '), is(x, '\t')), _mm_or_si128(is(x, '\n'), is(x, '\r')));
  }

  static BlockMasks classify(const char* p) {
    const auto* v = reinterpret_cast<const __m128i*>(p);
    const __m128i a = _mm_loadu_si128(v), b = _mm_loadu_si128(v + 1);
    const __m128i c = _mm_loadu_si128(v + 2), d = _mm_loadu_si128(v + 3);
    BlockMasks m;
    m.digit = join(digit(a), digit(b), digit(c), digit(d));
    m.zero = join(is(a, '0'), is(b, '0'), is(c, '0'), is(d, '0'));
    m.comma = join(is(a, ','), is(b, ','), is(c, ','), is(d, ','));
    m.dot = join(is(a, '.'), is(b, '.'), is(c, '.'), is(d, '.'));
    m.minus = join(is(a, '-'), is(b, '-'), is(c, '-'), is(d, '-'));
    // Whitespace inside a run of numbers is rare: tell it apart only when a byte is <= ' '.
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(low(a), low(b)), _mm_or_si128(low(c), low(d)))) != 0)
      m.space = join(space(a), space(b), space(c), space(d));
    return m;
  }
};

#define TANDEM_AVX2 __attribute__((target("avx2,bmi,bmi2,lzcnt,popcnt")))

struct Avx2Classifier {
  TANDEM_AVX2 static std::uint64_t bits(__m256i v) {
    return static_cast<std::uint32_t>(_mm256_movemask_epi8(v));
  }
  TANDEM_AVX2 static std::uint64_t join(__m256i a, __m256i b) { return bits(a) | (bits(b) << 32); }
  // x - '0' as an unsigned byte is below 10 exactly for the digits.
  TANDEM_AVX2 static __m256i digit(__m256i x) {
    const __m256i d = _mm256_sub_epi8(x, _mm256_set1_epi8('0'));
    return _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(9)), d);
  }
  TANDEM_AVX2 static __m256i is(__m256i x, char c) { return _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c)); }
  TANDEM_AVX2 static __m256i low(__m256i x) {
    return _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(' ')), x);
  }
  TANDEM_AVX2 static __m256i space(__m256i x) {
    return _mm256_or_si256(_mm256_or_si256(is(x, ' '), is(x, '\t')),
                           _mm256_or_si256(is(x, '\n'), is(x, '\r')));
  }

  TANDEM_AVX2 static BlockMasks classify(const char* p) {
    const auto* v = reinterpret_cast<const __m256i*>(p);
    const __m256i a = _mm256_loadu_si256(v), b = _mm256_loadu_si256(v + 1);
    BlockMasks m;
    m.digit = join(digit(a), digit(b));
    m.zero = join(is(a, '0'), is(b, '0'));
    m.comma = join(is(a, ','), is(b, ','));
    m.dot = join(is(a, '.'), is(b, '.'));
    m.minus = join(is(a, '-'), is(b, '-'));
    // Whitespace inside a run of numbers is rare: tell it apart only when a byte is <= ' '.
    const __m256i any_low = _mm256_or_si256(low(a), low(b));
    if (!_mm256_testz_si256(any_low, any_low)) m.space = join(space(a), space(b));
    return m;
  }
};

#define TANDEM_AVX512 __attribute__((target("avx512f,avx512bw,bmi,bmi2,lzcnt,popcnt")))

// One 64-byte load, and each class is one compare straight into a mask register: no movemask,
// no joining of halves. About a third fewer instructions per block than AVX2.
struct Avx512Classifier {
  TANDEM_AVX512 static std::uint64_t is(__m512i x, char c) {
    return _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(c));
  }

  TANDEM_AVX512 static BlockMasks classify(const char* p) {
    const __m512i x = _mm512_loadu_si512(p);
    BlockMasks m;
    // x - '0' as an unsigned byte is below 10 exactly for the digits.
    m.digit = _mm512_cmple_epu8_mask(_mm512_sub_epi8(x, _mm512_set1_epi8('0')), _mm512_set1_epi8(9));
    m.zero = is(x, '0');
    m.comma = is(x, ',');
    m.dot = is(x, '.');
    m.minus = is(x, '-');
    // Whitespace inside a run of numbers is rare: tell it apart only when a byte is <= ' '.
    if (_mm512_cmple_epu8_mask(x, _mm512_set1_epi8(' ')) != 0)
      m.space = is(x, ' ') | is(x, '\t') | is(x, '\n') | is(x, '\r');
    return m;
  }
};

__attribute__((flatten)) const char* scan_blocks_sse2(const char* p, const char* e, bool reject_long_numbers,
                                                      std::size_t& elements) {
  return scan_number_blocks<Sse2Classifier>(p, e, reject_long_numbers, elements);
}

TANDEM_AVX2 __attribute__((flatten)) const char*
scan_blocks_avx2(const char* p, const char* e, bool reject_long_numbers, std::size_t& elements) {
  return scan_number_blocks<Avx2Classifier>(p, e, reject_long_numbers, elements);
}

TANDEM_AVX512 __attribute__((flatten)) const char*
scan_blocks_avx512(const char* p, const char* e, bool reject_long_numbers, std::size_t& elements) {
  return scan_number_blocks<Avx512Classifier>(p, e, reject_long_numbers, elements);
}

bool cpu_has_avx512() {
  __builtin_cpu_init(); // needed when called from a static initialiser
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
}

bool cpu_has_avx2() {
  __builtin_cpu_init(); // needed when called from a static initialiser
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("popcnt");
}

// ---- 512 bytes at a time: eight blocks' masks in the lanes of one register ------------------
//
// The block check above spends ~90 instructions on a 64-byte block, most of them on the rules'
// shifts and ANDs over the block's 64-bit masks, and each block waits for the one before it to
// find its last comma. Here eight consecutive blocks are classified first, their masks stored
// side by side, and the same rules run once over eight lanes of a 512-bit register: one vector
// instruction does the work of eight scalar ones, and nothing waits for a comma.
//
// The rules look one byte back, so each lane takes the top bit of the lane before it, and lane 0
// that of the previous 512 bytes; the one-point rule's addition carries between lanes the same
// way. The 512 bytes are accepted or turned down whole. Turned down (a closing bracket, an
// exponent, whitespace before a comma, a broken number, a digit run that could be too long), the
// scan goes back to just after the last comma already accepted, and the 64-byte block check and
// then the element loop take over from there, exactly as without this step.

constexpr std::size_t kLanes = 8;
constexpr std::size_t kLaneRunBytes = kLanes * kBlockBytes;

// Lane j is block j's mask, as BlockMasks holds it.
struct alignas(64) LaneMasks {
  std::uint64_t digit[kLanes];
  std::uint64_t zero[kLanes];
  std::uint64_t comma[kLanes];
  std::uint64_t dot[kLanes];
  std::uint64_t minus[kLanes];
  std::uint64_t space[kLanes];
};

// Bit i of each lane becomes what bit i-1 was: the previous byte's class. Bit 0 of lane j is the
// top bit of lane j-1, and bit 0 of lane 0 the top bit of `before`'s lane 7.
TANDEM_AVX512 inline __m512i previous_byte(__m512i x, __m512i before) {
  const __m512i lane_before = _mm512_alignr_epi64(x, before, 7);
  return _mm512_or_si512(_mm512_slli_epi64(x, 1), _mm512_srli_epi64(lane_before, 63));
}

TANDEM_AVX512 inline __m512i popcount_lanes(__m512i x) {
  // Bits set in each nibble value 0..15, looked up per byte, then summed per lane.
  const __m512i nibble_bits = _mm512_set4_epi32(0x04030302, 0x03020201, 0x03020201, 0x02010100);
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
  const __m512i low = _mm512_and_si512(x, low_nibbles);
  const __m512i high = _mm512_and_si512(_mm512_srli_epi16(x, 4), low_nibbles);
  const __m512i per_byte =
      _mm512_add_epi8(_mm512_shuffle_epi8(nibble_bits, low), _mm512_shuffle_epi8(nibble_bits, high));
  return _mm512_sad_epu8(per_byte, _mm512_setzero_si512());
}

TANDEM_AVX512 inline void classify_lane(const char* p, std::size_t j, LaneMasks& m) {
  const BlockMasks b = Avx512Classifier::classify(p + j * kBlockBytes);
  m.digit[j] = b.digit;
  m.zero[j] = b.zero;
  m.comma[j] = b.comma;
  m.dot[j] = b.dot;
  m.minus[j] = b.minus;
  m.space[j] = b.space;
}

// Classifies the 512 bytes at `p` into `m`. False when fewer are left, or when the first block
// already holds a byte of another class: a run of exponents or strings would turn down every
// step, so that costs one block's compares rather than eight.
TANDEM_AVX512 inline bool classify_step(const char* p, const char* e, LaneMasks& m) {
  if (static_cast<std::size_t>(e - p) < kLaneRunBytes) return false;
  classify_lane(p, 0, m);
  if ((m.digit[0] | m.comma[0] | m.dot[0] | m.minus[0] | m.space[0]) != ~std::uint64_t{0}) return false;
#pragma GCC unroll 7
  for (std::size_t j = 1; j < kLanes; ++j) classify_lane(p, j, m);
  return true;
}

TANDEM_AVX512 __attribute__((flatten)) const char*
scan_lanes_avx512(const char* p, const char* e, bool reject_long_numbers, std::size_t& elements) {
  const char* const start = p;
  const __m512i zeros = _mm512_setzero_si512();
  const __m512i ones = _mm512_set1_epi64(-1);
  // What the rules read before the first byte: '[' or ',' (or whitespace after one), which
  // allows what a comma allows. Only lane 7's top bit counts.
  __m512i before_token = zeros;
  __m512i before_comma_or_space = _mm512_set1_epi64(std::numeric_limits<std::int64_t>::min());
  __m512i before_minus = zeros;
  __m512i before_dot = zeros;
  __m512i before_zero_start = zeros;
  __mmask8 before_carry = 0;
  __m512i commas = zeros; // accepted commas, per lane
  __m512i last_commas = zeros;
  const char* last_commas_at = nullptr;
  // Two steps' masks: the rules read one step's while the next step is classified. A vector load
  // over eight pending 8-byte stores cannot take its data from them and waits until they are
  // written; one step later they are.
  LaneMasks masks[2];
  std::size_t current = 0;
  bool classified = classify_step(p, e, masks[current]);
  while (classified) {
    const char* const next = p + kLaneRunBytes;
    const bool next_classified = classify_step(next, e, masks[current ^ 1]);
    const LaneMasks& m = masks[current];
    const __m512i digit = _mm512_load_si512(m.digit);
    const __m512i zero = _mm512_load_si512(m.zero);
    const __m512i comma = _mm512_load_si512(m.comma);
    const __m512i dot = _mm512_load_si512(m.dot);
    const __m512i minus = _mm512_load_si512(m.minus);
    const __m512i space = _mm512_load_si512(m.space);

    // The same rules as accept_block, over eight blocks and across their edges.
    const __m512i token = _mm512_or_si512(_mm512_or_si512(digit, dot), minus);
    const __m512i comma_or_space = _mm512_or_si512(comma, space);
    const __m512i prev_token = previous_byte(token, before_token);
    const __m512i prev_comma_or_space = previous_byte(comma_or_space, before_comma_or_space);
    const __m512i prev_minus = previous_byte(minus, before_minus);
    const __m512i prev_dot = previous_byte(dot, before_dot);
    const __m512i token_start = _mm512_andnot_si512(prev_token, token);
    const __m512i integer_start = _mm512_or_si512(_mm512_and_si512(token_start, digit), prev_minus);
    const __m512i zero_start = _mm512_and_si512(integer_start, zero);
    const __m512i prev_zero_start = previous_byte(zero_start, before_zero_start);
    __m512i bad = _mm512_andnot_si512(prev_comma_or_space, space);       // whitespace only after a comma
    bad = _mm512_or_si512(bad, _mm512_andnot_si512(prev_token, comma));  // a number before every comma
    bad = _mm512_or_si512(bad, _mm512_and_si512(token_start, dot));      // begins with a digit or '-'
    bad = _mm512_or_si512(bad, _mm512_andnot_si512(token_start, minus)); // '-' only first,
    bad = _mm512_or_si512(
        bad, _mm512_andnot_si512(digit, _mm512_or_si512(prev_minus, prev_dot))); // digits after '-' and '.'
    bad = _mm512_or_si512(bad, _mm512_and_si512(prev_zero_start, digit));        // no leading zero
    // One point per number, as in accept_block; a lane that overflows carries into the next.
    // That carry cannot overflow again: a lane of 64 digits is turned down below, and with a
    // digit after every point the sum is all ones only for such a lane.
    __m512i sum = _mm512_add_epi64(digit, prev_dot);
    const __mmask8 carry = _mm512_cmplt_epu64_mask(sum, digit);
    sum = _mm512_mask_add_epi64(sum, static_cast<__mmask8>((carry << 1) | before_carry), sum,
                                _mm512_set1_epi64(1));
    bad = _mm512_or_si512(bad, _mm512_and_si512(_mm512_andnot_si512(digit, sum), dot));

    __mmask8 turned_down = _mm512_test_epi64_mask(bad, bad);
    const __m512i known = _mm512_or_si512(token, comma_or_space);
    turned_down |= _mm512_cmpneq_epi64_mask(known, ones); // a byte of no class above
    turned_down |= _mm512_cmpeq_epi64_mask(digit, ones);  // 64 digits in a row
    if (reject_long_numbers) {
      // A run of 39 digits puts at least 20 in one lane: turn down any lane with 20 in a row
      // (bit i: bytes i .. i+k-1 are all digits, k growing to 20).
      __m512i run = _mm512_and_si512(digit, _mm512_srli_epi64(digit, 1));
      run = _mm512_and_si512(run, _mm512_srli_epi64(run, 2));
      run = _mm512_and_si512(run, _mm512_srli_epi64(run, 4));
      run = _mm512_and_si512(run, _mm512_srli_epi64(run, 8));
      run = _mm512_and_si512(run, _mm512_srli_epi64(run, 4));
      turned_down |= _mm512_test_epi64_mask(run, run);
    }
    if (turned_down != 0) break;

    commas = _mm512_add_epi64(commas, popcount_lanes(comma));
    if (_mm512_test_epi64_mask(comma, comma) != 0) {
      last_commas = comma;
      last_commas_at = p;
    }
    before_token = token;
    before_comma_or_space = comma_or_space;
    before_minus = minus;
    before_dot = dot;
    before_zero_start = zero_start;
    before_carry = static_cast<__mmask8>((carry >> 7) & 1);
    p = next;
    current ^= 1;
    classified = next_classified;
  }
  // Accepted 512-byte steps can hold no comma (whitespace after one, say): then nothing counts.
  if (last_commas_at == nullptr) return start;
  elements += static_cast<std::size_t>(_mm512_reduce_add_epi64(commas));
  alignas(64) std::uint64_t lanes[kLanes];
  _mm512_store_si512(lanes, last_commas);
  std::size_t j = kLanes - 1;
  while (lanes[j] == 0) --j;
  return last_commas_at + j * kBlockBytes + static_cast<std::size_t>(63 - std::countl_zero(lanes[j])) + 1;
}

// Then the 64-byte block check for what the 512-byte step left: the array's last few hundred
// bytes, or the blocks around something it turned down.
TANDEM_AVX512 __attribute__((flatten)) const char*
scan_lanes_then_blocks_avx512(const char* p, const char* e, bool reject_long_numbers, std::size_t& elements) {
  return scan_number_blocks<Avx512Classifier>(scan_lanes_avx512(p, e, reject_long_numbers, elements), e,
                                              reject_long_numbers, elements);
}
#endif

NumberRunScanner scanner_for(NumberScan scan) {
  switch (scan) {
#ifdef TANDEM_NUMBER_SCAN_X86
  case NumberScan::sse2: return scan_blocks_sse2;
  case NumberScan::avx2: return cpu_has_avx2() ? scan_blocks_avx2 : nullptr;
  case NumberScan::avx512: return cpu_has_avx512() ? scan_blocks_avx512 : nullptr;
  case NumberScan::avx512_lanes: return cpu_has_avx512() ? scan_lanes_then_blocks_avx512 : nullptr;
#endif
  default: return nullptr;
  }
}

NumberScan best_number_scan() {
#ifdef TANDEM_NUMBER_SCAN_X86
  if (cpu_has_avx512()) return NumberScan::avx512_lanes;
  return cpu_has_avx2() ? NumberScan::avx2 : NumberScan::sse2;
#else
  return NumberScan::bytewise;
#endif
}

// Chosen once from the CPU; only tests change it (set_number_scan).
NumberScan g_number_scan = best_number_scan();
NumberRunScanner g_scanner = scanner_for(g_number_scan);

} // namespace

NumberScan number_scan() {
  return g_number_scan;
}

NumberRunScanner number_run_scanner() {
  return g_scanner;
}

bool set_number_scan(NumberScan scan) {
  if (scan != NumberScan::bytewise && scanner_for(scan) == nullptr) return false;
  g_number_scan = scan;
  g_scanner = scanner_for(scan);
  return true;
}

} // namespace tandem::v2::detail
