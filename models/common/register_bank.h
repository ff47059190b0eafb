// Memory-mapped registers, vcml reg<T>-style: each register has a name, offset, width,
// reset value, a writable mask and optional read/write hooks. Every vendor's register
// file is one RegisterBank; accesses to holes are reported as errors to the initiator.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <tlm>

namespace iommusim::common {

class RegisterBank {
 public:
  struct Register {
    std::string name;
    uint64_t offset = 0;
    unsigned bytes = 4;
    uint64_t value = 0;
    uint64_t writable = ~0ull;
    std::function<void(uint64_t old_value, uint64_t new_value)> on_write;   // after the store
    std::function<uint64_t(uint64_t stored)> on_read;                       // may synthesize
  };

  Register& add(std::string name, uint64_t offset, unsigned bytes, uint64_t reset, uint64_t writable = ~0ull);
  // Also answer at `alias_offset` (SMMU page-1 copies of the queue pointers).
  void alias(uint64_t alias_offset, const std::string& name);
  Register& at(const std::string& name);
  uint64_t get(const std::string& name) const;
  void set(const std::string& name, uint64_t v);   // hardware-side update, no hooks

  // Accesses of 4 or 8 bytes at a register's offset (or the upper half of a 64-bit one).
  // Return false for a hole or a bad size (the model answers with an address error).
  bool read(uint64_t offset, unsigned len, uint64_t& out);
  bool write(uint64_t offset, unsigned len, uint64_t data);
  // Serves one TLM access to the register window [0, window_bytes): 4- or 8-byte reads and
  // writes without byte enables; anything else answers TLM_ADDRESS_ERROR_RESPONSE.
  void transport(tlm::tlm_generic_payload& p, uint64_t window_bytes);

 private:
  Register* find(uint64_t offset, unsigned& shift, unsigned len);
  std::map<uint64_t, Register> regs_;
  std::map<uint64_t, uint64_t> aliases_;
  std::map<std::string, uint64_t> by_name_;
};

}  // namespace iommusim::common
