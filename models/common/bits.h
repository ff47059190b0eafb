// Bit-field helpers shared by every register, descriptor and command encoder.
// Ranges are inclusive [hi:lo], as the architecture manuals write them.
#pragma once
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace iommusim::common {

constexpr uint64_t mask(unsigned hi, unsigned lo) {
  return (hi - lo + 1 >= 64) ? ~0ull : (((1ull << (hi - lo + 1)) - 1) << lo);
}
constexpr uint64_t extract(uint64_t v, unsigned hi, unsigned lo) { return (v & mask(hi, lo)) >> lo; }
constexpr bool bit(uint64_t v, unsigned b) { return (v >> b) & 1u; }
// Returns v with [hi:lo] replaced by field. Bits of field above the width are dropped.
constexpr uint64_t deposit(uint64_t v, unsigned hi, unsigned lo, uint64_t field) {
  return (v & ~mask(hi, lo)) | ((field << lo) & mask(hi, lo));
}
// True when field does not fit in [hi:lo] (used by encoders to reject out-of-range values).
constexpr bool overflows(unsigned hi, unsigned lo, uint64_t field) {
  return (hi - lo + 1 < 64) && (field >> (hi - lo + 1)) != 0;
}

// A named bit field, vcml-style: `using ASID = Field<63, 48>; ASID::get(dw0)`.
template <unsigned Hi, unsigned Lo>
struct Field {
  static_assert(Hi >= Lo && Hi < 64, "bad field range");
  static constexpr unsigned hi = Hi, lo = Lo, width = Hi - Lo + 1;
  static constexpr uint64_t get(uint64_t v) { return extract(v, Hi, Lo); }
  static constexpr uint64_t set(uint64_t v, uint64_t f) { return deposit(v, Hi, Lo, f); }
  static constexpr bool fits(uint64_t f) { return !overflows(Hi, Lo, f); }
  // Encoders: a value wider than the field is a caller bug, not input to tolerate.
  static void put(uint64_t& word, uint64_t f) {
    assert(fits(f) && "value too wide for its field");
    word = set(word, f);
  }
  // Fields that hold address bits [Hi:Lo] in place (table pointers, page addresses):
  // the low bits of the byte address are dropped on purpose.
  static constexpr uint64_t get_address(uint64_t word) { return get(word) << Lo; }
  static void put_address(uint64_t& word, uint64_t addr) {
    assert((Hi == 63 || (addr >> ((Hi + 1) & 63)) == 0) && "address too wide for its field");
    word = set(word, addr >> Lo);
  }
};

// Decoders: say why an encoding is ill-formed (when the caller asks) and return nullopt,
// so a decoder can `return reject(why, "...")`.
inline std::nullopt_t reject(std::string* why, std::string reason) {
  if (why) *why = std::move(reason);
  return std::nullopt;
}

// "0x1F": register and field values in error messages.
inline std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llX", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace iommusim::common
