#include "models/common/register_bank.h"

#include <cstring>

#include <stdexcept>

namespace iommusim::common {

RegisterBank::Register& RegisterBank::add(std::string name, uint64_t offset, unsigned bytes, uint64_t reset,
                                          uint64_t writable) {
  Register r;
  r.name = name; r.offset = offset; r.bytes = bytes; r.value = reset;
  r.writable = bytes == 8 ? writable : (writable & 0xFFFFFFFFull);
  by_name_[name] = offset;
  return regs_[offset] = r;
}

void RegisterBank::alias(uint64_t alias_offset, const std::string& name) { aliases_[alias_offset] = by_name_.at(name); }

RegisterBank::Register& RegisterBank::at(const std::string& name) { return regs_.at(by_name_.at(name)); }
uint64_t RegisterBank::get(const std::string& name) const { return regs_.at(by_name_.at(name)).value; }
void RegisterBank::set(const std::string& name, uint64_t v) { at(name).value = v; }

RegisterBank::Register* RegisterBank::find(uint64_t offset, unsigned& shift, unsigned len) {
  if (auto a = aliases_.find(offset); a != aliases_.end()) offset = a->second;
  shift = 0;
  auto it = regs_.find(offset);
  if (it == regs_.end() && len == 4) {   // upper half of a 64-bit register
    it = regs_.find(offset - 4);
    if (it == regs_.end() || it->second.bytes != 8) return nullptr;
    shift = 32;
  }
  if (it == regs_.end()) return nullptr;
  if (len != 4 && len != 8) return nullptr;
  if (len > it->second.bytes) return nullptr;
  return &it->second;
}

bool RegisterBank::read(uint64_t offset, unsigned len, uint64_t& out) {
  unsigned shift;
  Register* r = find(offset, shift, len);
  if (!r) return false;
  uint64_t v = r->on_read ? r->on_read(r->value) : r->value;
  v >>= shift;
  out = len == 8 ? v : (v & 0xFFFFFFFFull);
  return true;
}

bool RegisterBank::write(uint64_t offset, unsigned len, uint64_t data) {
  unsigned shift;
  Register* r = find(offset, shift, len);
  if (!r) return false;
  const uint64_t lane = (len == 8 ? ~0ull : 0xFFFFFFFFull) << shift;
  const uint64_t mask = lane & r->writable;
  const uint64_t old = r->value;
  r->value = (old & ~mask) | ((data << shift) & mask);
  if (r->on_write) r->on_write(old, r->value);
  return true;
}

void RegisterBank::transport(tlm::tlm_generic_payload& p, uint64_t window_bytes) {
  const unsigned len = p.get_data_length();
  uint64_t v = 0;
  bool ok = false;
  if (p.get_byte_enable_ptr() == nullptr && (len == 4 || len == 8) && p.get_address() < window_bytes) {
    if (p.is_read()) {
      ok = read(p.get_address(), len, v);
      if (ok) std::memcpy(p.get_data_ptr(), &v, len);
    } else if (p.is_write()) {
      std::memcpy(&v, p.get_data_ptr(), len);
      ok = write(p.get_address(), len, v);
    }
  }
  p.set_response_status(ok ? tlm::TLM_OK_RESPONSE : tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

}  // namespace iommusim::common
