#include "models/common/register_file.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "models/common/bits.h"

namespace iommusim::common {

Register::Register(RegisterFile& file, std::string name, uint64_t offset, unsigned bytes)
    : writable_(bytes == 8 ? ~0ull : 0xFFFFFFFFull), name_(std::move(name)), offset_(offset), bytes_(bytes) {
  file.add(*this);
}

void Register::software_write(unsigned shift, unsigned len, uint64_t data) {
  const uint64_t lane = (len == 8 ? ~0ull : 0xFFFFFFFFull) << shift;
  const uint64_t d = (data << shift) & lane;
  const uint64_t old = value_;
  value_ = ((old & ~(lane & writable_)) | (d & writable_)) & ~(d & w1c_) & width_mask();
  if (on_write_) on_write_(old, value_);
}

namespace {
// The first slot at or after `offset` (slots are sorted by offset).
template <class Slots>
auto slot_at(Slots& slots, uint64_t offset) {
  return std::lower_bound(slots.begin(), slots.end(), offset,
                          [](const RegisterFile::Slot& a, uint64_t o) { return a.offset < o; });
}
}  // namespace

void RegisterFile::add(Register& r) { alias(r.offset(), r); }

void RegisterFile::alias(uint64_t offset, Register& r) {
  // A 64-bit register also takes the upper half's offset. Check both before adding either.
  const unsigned halves = r.bytes() == 8 ? 2 : 1;
  for (unsigned h = 0; h < halves; ++h) {
    const uint64_t o = offset + 4 * h;
    auto it = slot_at(slots_, o);
    if (it != slots_.end() && it->offset == o)
      throw std::logic_error("register " + r.name() + " at " + hex(o) + " overlaps " + it->reg->name());
  }
  for (unsigned h = 0; h < halves; ++h) slots_.insert(slot_at(slots_, offset + 4 * h), Slot{offset + 4 * h, &r, 32 * h});
}

const RegisterFile::Slot* RegisterFile::find(uint64_t offset, unsigned len) const {
  if (len != 4 && len != 8) return nullptr;
  auto it = slot_at(slots_, offset);
  if (it == slots_.end() || it->offset != offset) return nullptr;
  // The upper half of a 64-bit register takes 4-byte accesses only.
  if (it->shift != 0 ? len != 4 : len > it->reg->bytes()) return nullptr;
  return &*it;
}

Register* RegisterFile::at(uint64_t offset) const {
  const Slot* s = find(offset, 4);
  return s ? s->reg : nullptr;
}

bool RegisterFile::read(uint64_t offset, unsigned len, uint64_t& out) const {
  const Slot* s = find(offset, len);
  if (!s) return false;
  const uint64_t v = s->reg->raw() >> s->shift;
  out = len == 8 ? v : (v & 0xFFFFFFFFull);
  return true;
}

bool RegisterFile::write(uint64_t offset, unsigned len, uint64_t data) {
  const Slot* s = find(offset, len);
  if (!s) return false;
  s->reg->software_write(s->shift, len, data);
  return true;
}

void RegisterFile::transport(tlm::tlm_generic_payload& p, uint64_t window_bytes) {
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
