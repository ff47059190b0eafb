#include "platforms/vmm/guest_vintf.h"

namespace iommusim::vmm {

GuestVintf::GuestVintf(smmuv3::Cmdqv& cmdqv, unsigned vintf, unsigned lvcmdqs, double mmio_read_ns,
                       double mmio_write_ns, std::function<bool(unsigned, uint64_t)> set_base)
    : cmdqv_(cmdqv), vintf_(vintf), lvcmdqs_(lvcmdqs), read_time_(mmio_read_ns, sc_core::SC_NS),
      write_time_(mmio_write_ns, sc_core::SC_NS), set_base_(std::move(set_base)) {}

uint32_t GuestVintf::read32(unsigned lidx, uint64_t reg) {
  sc_core::wait(read_time_);
  return cmdqv_.read32(page0(lidx) + reg);
}

void GuestVintf::write32(unsigned lidx, uint64_t reg, uint32_t value) {
  sc_core::wait(write_time_);
  cmdqv_.write32(page0(lidx) + reg, value);
}

uint32_t GuestVintf::peek32(unsigned lidx, uint64_t reg) { return cmdqv_.read32(page0(lidx) + reg); }

void GuestVintf::set_command_probe(unsigned lidx, std::function<void(const common::CommandTrace&)> probe) {
  cmdqv_.queue(global_queue(lidx)).set_probe(std::move(probe));
}

}  // namespace iommusim::vmm
