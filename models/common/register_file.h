// Memory-mapped registers in the style of vcml's reg<T>: each register is a typed member of
// its model (Reg<uint32_t>, Reg<uint64_t>) with named-field accessors (get<F>(), set<F>(),
// F a common::Field from the vendor's registers.h), write rules and an on-write handler.
// The RegisterFile maps offsets to registers once, at elaboration, and serves MMIO.
//
// What it models
// - Per register: a reset value; writable bits (a write stores them); write-1-to-clear
//   bits (a 1 clears, a 0 leaves them); every other bit is read-only. A handler runs after
//   each software write with the old and the stored value, and may override the result
//   (acknowledge registers, one-shot command bits, doorbells that wake a queue).
// - Hardware-side updates (set, set<F>) bypass the write rules and the handler.
// - 4- and 8-byte accesses at a register's offset, and 4-byte accesses to either half of a
//   64-bit register; aliases (one register answering at a second offset).
// - Anything else (a hole, another size, byte enables, beyond the window) is an address
//   error to the initiator.
//
// What it does not model
// - Read side effects (clear-on-read), byte-granular access, endianness other than little.
//
// Hot paths read a register member directly (`cr0_.get<CR0_SMMUEN>()`: a load and a mask);
// the offset map (a sorted vector, binary search) is used by MMIO accesses only.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <tlm>

namespace iommusim::common {

class RegisterFile;

// A register's storage and write rules, whatever its width (Reg<T> adds the typed view).
class Register {
 public:
  Register(const Register&) = delete;
  Register& operator=(const Register&) = delete;

  const std::string& name() const { return name_; }
  uint64_t offset() const { return offset_; }
  unsigned bytes() const { return bytes_; }
  uint64_t writable_bits() const { return writable_; }
  uint64_t w1c_bits() const { return w1c_; }
  uint64_t raw() const { return value_; }

  // A software write of `len` bytes (4 or 8) holding `data`, at bit `shift` (0, or 32 for
  // the upper half of a 64-bit register): the write rules, then the handler.
  void software_write(unsigned shift, unsigned len, uint64_t data);

 protected:
  Register(RegisterFile& file, std::string name, uint64_t offset, unsigned bytes);
  uint64_t width_mask() const { return bytes_ == 8 ? ~0ull : 0xFFFFFFFFull; }

  uint64_t value_ = 0;
  uint64_t writable_;   // all bits until configured otherwise
  uint64_t w1c_ = 0;
  std::function<void(uint64_t old_value, uint64_t new_value)> on_write_;

 private:
  std::string name_;
  uint64_t offset_;
  unsigned bytes_;
};

template <typename T>
class Reg : public Register {
  static_assert(std::is_same_v<T, uint32_t> || std::is_same_v<T, uint64_t>, "registers are 32 or 64 bits");

 public:
  Reg(RegisterFile& file, std::string name, uint64_t offset) : Register(file, std::move(name), offset, sizeof(T)) {}

  // Hardware-side view: no write rules, no handler.
  T get() const { return T(value_); }
  void set(T v) { value_ = v; }
  template <class F> uint64_t get() const { check<F>(); return F::get(value_); }
  template <class F> void set(uint64_t field) { check<F>(); value_ = T(F::set(value_, field)); }

  // Elaboration-time configuration, chainable. Writable and write-1-to-clear bits are
  // disjoint: w1c() removes its bits from the writable ones.
  Reg& reset(T v) { value_ = v; return *this; }
  Reg& writable(T mask) { writable_ = mask & ~w1c_; return *this; }
  Reg& read_only() { return writable(0); }
  Reg& w1c(T mask) { w1c_ = mask; writable_ &= ~uint64_t(mask); return *this; }
  // Runs after every software write, once the write rules have stored the new value.
  Reg& on_write(std::function<void(T old_value, T new_value)> h) {
    on_write_ = [h = std::move(h)](uint64_t o, uint64_t n) { h(T(o), T(n)); };
    return *this;
  }

 private:
  template <class F> static constexpr void check() {
    static_assert(F::hi < 8 * sizeof(T), "field beyond the register's width");
  }
};

// The offset map of one register window. Registers add themselves when constructed.
class RegisterFile {
 public:
  // Registers must not overlap; a second register (or alias) at a taken offset throws.
  void add(Register& r);
  void alias(uint64_t alias_offset, Register& r);
  // nullptr for a hole.
  Register* at(uint64_t offset) const;

  // Returns false for a hole or a bad size (the model answers with an address error).
  bool read(uint64_t offset, unsigned len, uint64_t& out) const;
  bool write(uint64_t offset, unsigned len, uint64_t data);
  // Serves one TLM access to the window [0, window_bytes): 4- or 8-byte reads and writes
  // without byte enables; anything else answers TLM_ADDRESS_ERROR_RESPONSE.
  void transport(tlm::tlm_generic_payload& p, uint64_t window_bytes);

  struct Slot {
    uint64_t offset;
    Register* reg;
    unsigned shift;   // 32: the upper half of a 64-bit register
  };

 private:
  const Slot* find(uint64_t offset, unsigned len) const;
  std::vector<Slot> slots_;   // sorted by offset
};

}  // namespace iommusim::common
