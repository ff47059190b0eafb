// What the virtio-iommu device tests share (test_virtio_iommu.cpp, test_virtio_iommu_amd.cpp):
// a minimal guest on the device's virtio-mmio registers that sends one request at a time,
// the device over a host IOMMU harness, and the full-range UNMAP check whose host commands
// each vendor's test works out by hand.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "iommu_fixture.h"
#include "platforms/driver/virtio_iommu_format.h"
#include "platforms/driver/virtqueue.h"
#include "platforms/vmm/virtio_iommu.h"

namespace iommusim::test {

namespace vi = driver::virtio_iommu;
namespace vq = driver::virtq;
using vmm::Errno;

constexpr uint32_t kRid = 0x10;        // the assigned device
constexpr uint32_t kEndpoint = 3;      // its endpoint ID in the guest
constexpr uint64_t kRamBytes = 64ull << 20;
constexpr uint64_t kQueueGpa = 0x10000, kReqGpa = 0x20000, kBufGpa = 0x100000;

// A minimal guest: the virtio-mmio set-up of the request queue, then one request at a time
// (body and writable part at kReqGpa), notified and polled until used.
struct Guest : sc_core::sc_module {
  tlm_utils::simple_initiator_socket<Guest> mmio{"mmio"};
  vmm::GuestRam& ram;
  vq::Layout l = vq::Layout::contiguous(kQueueGpa, 16);
  std::unique_ptr<vq::DriverSide> q;
  Guest(sc_core::sc_module_name n, vmm::GuestRam& r) : sc_module(n), ram(r) {}

  uint32_t access(bool write, uint64_t off, uint32_t v = 0) {
    tlm::tlm_generic_payload p;
    p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_address(off);
    p.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
    p.set_data_length(4);
    p.set_streaming_width(4);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sc_core::sc_time d = sc_core::SC_ZERO_TIME;
    mmio->b_transport(p, d);
    EXPECT_EQ(p.get_response_status(), tlm::TLM_OK_RESPONSE) << "offset " << off;
    return v;
  }
  void setup() {
    using namespace vmm::virtio_mmio;
    EXPECT_EQ(access(false, kMagic), 0x74726976u);
    EXPECT_EQ(access(false, kDeviceId), 23u);
    access(true, kDeviceFeaturesSel, 1);
    EXPECT_EQ(access(false, kDeviceFeatures), 1u);   // VIRTIO_F_VERSION_1 is bit 32
    access(true, kDeviceFeaturesSel, 0);
    // INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, BYPASS_CONFIG: bits 0, 1, 2, 4, 6.
    EXPECT_EQ(access(false, kDeviceFeatures), 0x57u);
    access(true, kQueueSel, kRequestQueue);
    EXPECT_EQ(access(false, kQueueNumMax), 256u);
    access(true, kQueueNum, l.size);
    access(true, kQueueDescLow, uint32_t(l.desc));
    access(true, kQueueDriverLow, uint32_t(l.avail));
    access(true, kQueueDeviceLow, uint32_t(l.used));
    access(true, kQueueReady, 1);
    access(true, kStatus, 1 | 2 | 8 | 4);   // ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK
    q = std::make_unique<vq::DriverSide>(ram, l);
  }
  // Places r (body and writable part at kReqGpa) on the queue and rings the doorbell;
  // `writable` is the writable part's size, `readable` the readable part's (0: the body's).
  void post(const vi::Request& r, uint32_t writable = vi::kTailBytes, size_t readable = 0) {
    uint8_t b[vi::kMaxBody];
    size_t n = vi::encode(r, b);
    if (n == 0) n = 1;   // a type the format does not know: its head's type byte only
    ram.write(kReqGpa, b, n);
    const vq::Buffer out{kReqGpa, uint32_t(readable ? readable : n)}, in{kReqGpa + 0x100, writable};
    EXPECT_TRUE(q->add(&out, 1, &in, 1).has_value());
    q->publish();
    access(true, vmm::virtio_mmio::kQueueNotify, vmm::virtio_mmio::kRequestQueue);
  }
  // Sends r and returns its status. The device writes QEMU's output_size (the tail, or
  // PROBE's properties and tail) whatever the guest offered: the used length, the tail at its end.
  vi::Status send(const vi::Request& r, uint32_t writable = vi::kTailBytes, size_t readable = 0,
                  uint32_t output = vi::kTailBytes) {
    post(r, writable, readable);
    std::optional<vq::Used> u;
    while (!(u = q->get_used())) sc_core::wait(50, sc_core::SC_NS);
    EXPECT_EQ(u->len, output);
    uint8_t tail[4];
    ram.read(kReqGpa + 0x100 + output - 4, tail, 4);
    return vi::Status(tail[0]);
  }
};

inline vi::Request req(vi::ReqType t, uint32_t domain, uint64_t start = 0, uint64_t end = 0, uint64_t phys = 0,
                uint32_t flags = vi::kMapFRead | vi::kMapFWrite, uint32_t endpoint = kEndpoint) {
  vi::Request r;
  r.type = t;
  r.domain = domain;
  r.endpoint = endpoint;
  r.virt_start = start;
  r.virt_end = end;
  r.phys_start = phys;
  r.flags = t == vi::ReqType::Attach ? 0 : flags;
  return r;
}

// The device over host IOMMU harness H (its model and host driver), a guest on its MMIO.
template <class H>
struct DeviceRig {
  H h;
  vmm::GuestRam ram{h.memory, kGuestRamPa, kRamBytes};
  vmm::Iommufd fd{{vmm::HostIommu{&h.drv, &h.drv}}};
  vmm::VirtioIommuDevice dev;
  Guest guest{"guest", ram};
  static vmm::VirtioIommuConfig config(bool domain_flush, vmm::VmmFault inject = vmm::VmmFault::None) {
    vmm::VirtioIommuConfig c;
    c.cpu_mhz = 2000;
    c.domain_flush = domain_flush;
    c.inject = inject;
    return c;
  }
  explicit DeviceRig(bool domain_flush = false, vmm::VmmFault inject = vmm::VmmFault::None)
      : dev("viommu", config(domain_flush, inject), ram, fd, h.drv) {
    guest.mmio.bind(dev.mmio);
  }
  // The host up, `rids` bound as endpoints kEndpoint, kEndpoint + 1, ..., the guest's queue set up.
  void boot(std::vector<uint32_t> rids = {kRid}) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    for (size_t i = 0; i < rids.size(); ++i) {
      uint32_t id = 0;
      ASSERT_EQ(fd.bind_device(rids[i], 0, &id), Errno::Ok);
      IOMMUSIM_ASSERT_OK(dev.add_endpoint(kEndpoint + uint32_t(i), id));
    }
    guest.setup();
  }
};
// A domain with [0x1000, 0x1FFF] and [0x3000, 0x5FFF] mapped, `endpoints` attached to it,
// then a full-range UNMAP (the guest's domain-wide invalidation): per endpoint 3 IOAS_UNMAPs
// (4K at 0x1000, 4K at 0x3000, 8K at 0x4000), each the host driver's strict unmap of a
// single-stage domain: one range-invalidation command and one barrier. With domain_flush
// (vmm.virtio.host_flush = domain) the unmaps invalidate nothing and one domain-wide
// invalidation per endpoint follows.
template <class H>
void expect_full_range_unmap(unsigned endpoints, uint64_t ioctls, uint64_t host_commands, bool domain_flush = false) {
  DeviceRig<H> rig(domain_flush);
  rig.h.run([&](H&) {
    std::vector<uint32_t> rids;
    for (unsigned i = 0; i < endpoints; ++i) rids.push_back(kRid + i);
    rig.boot(rids);
    if (::testing::Test::HasFatalFailure()) return;
    Guest& g = rig.guest;
    for (unsigned i = 0; i < endpoints; ++i)
      EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1, 0, 0, 0, 0, kEndpoint + i)), vi::Status::Ok);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x3000, 0x5FFF, kBufGpa + 0x3000)), vi::Status::Ok);
    EXPECT_EQ(g.send(req(vi::ReqType::Unmap, 1, 0, ~0ull)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), ioctls);
    EXPECT_EQ(rig.dev.last_request_host_commands(), host_commands);
  });
}

}  // namespace iommusim::test
