// virtio-iommu: the request and config layouts (Linux include/uapi/linux/virtio_iommu.h,
// virtio spec v1.2 "IOMMU device"), the split virtqueue (virtio spec v1.2 "Split
// Virtqueues"), QEMU's power-of-two chunking (dma_aligned_pow2_mask), and the VMM's device
// over an SMMUv3 host: each request's status as QEMU's virtio-iommu.c answers it and the
// host calls it makes. Expected bytes are worked out by hand from the structs' field offsets
// (little endian); expected chunks and host commands from the ranges.
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/common/correctness_oracle.h"
#include "platforms/driver/virtio_iommu_driver.h"
#include "platforms/driver/virtio_iommu_format.h"
#include "platforms/driver/virtqueue.h"
#include "platforms/vmm/virtio_iommu.h"
#include "smmuv3_fixture.h"
#include "virtio_guest_fixture.h"
#include "vtd_fixture.h"

namespace iommusim::test {
namespace {

namespace vi = driver::virtio_iommu;
namespace vq = driver::virtq;
using SmmuRig = DeviceRig<Harness>;

std::string hex_of(const uint8_t* p, size_t n) {
  static const char* d = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < n; ++i) { s += d[p[i] >> 4]; s += d[p[i] & 15]; }
  return s;
}

TEST(VirtioIommuFormat, MapRequestBytes) {
  vi::Request r;
  r.type = vi::ReqType::Map;
  r.domain = 1;
  r.virt_start = 0x10000;
  r.virt_end = 0x10FFF;
  r.phys_start = 0x80000;
  r.flags = vi::kMapFRead | vi::kMapFWrite;
  uint8_t b[vi::kMaxBody];
  ASSERT_EQ(vi::encode(r, b), 36u);   // tail at 36: 40 bytes with it
  // head {03, 3 reserved} | domain @4 | virt_start @8 | virt_end @16 | phys_start @24 | flags @32
  EXPECT_EQ(hex_of(b, 36), "03000000" "01000000" "0000010000000000" "FF0F010000000000" "0000080000000000"
                           "03000000");
  vi::Request back;
  vi::Status err;
  ASSERT_TRUE(vi::decode(b, 36, &back, &err));
  EXPECT_EQ(back.domain, 1u);
  EXPECT_EQ(back.virt_end, 0x10FFFu);
  EXPECT_EQ(back.phys_start, 0x80000u);
  EXPECT_EQ(back.flags, 3u);
}

TEST(VirtioIommuFormat, UnmapAttachDetachProbeBytes) {
  uint8_t b[vi::kMaxBody];
  vi::Request u{vi::ReqType::Unmap, 2, 0, 0, 0x2000, 0x3FFF, 0};
  ASSERT_EQ(vi::encode(u, b), 28u);   // 32 with the tail
  EXPECT_EQ(hex_of(b, 28), "04000000" "02000000" "0020000000000000" "FF3F000000000000" "00000000");
  vi::Request a{vi::ReqType::Attach, 5, 0x10, vi::kAttachFBypass, 0, 0, 0};
  ASSERT_EQ(vi::encode(a, b), 20u);   // 24 with the tail
  EXPECT_EQ(hex_of(b, 20), "01000000" "05000000" "10000000" "01000000" "00000000");
  vi::Request d{vi::ReqType::Detach, 5, 0x10, 0xFF, 0, 0, 0};   // DETACH has no flags: reserved[8]
  ASSERT_EQ(vi::encode(d, b), 20u);
  EXPECT_EQ(hex_of(b, 20), "02000000" "05000000" "10000000" "00000000" "00000000");
  vi::Request p{vi::ReqType::Probe, 0, 3, 0, 0, 0, 0};
  ASSERT_EQ(vi::encode(p, b), 72u);   // endpoint @4, 64 reserved, then the properties
  EXPECT_EQ(hex_of(b, 8), "05000000" "03000000");
}

TEST(VirtioIommuFormat, DecodeErrorsAndStatusCodes) {
  uint8_t b[vi::kMaxBody] = {};
  vi::Request r;
  vi::Status err = vi::Status::Ok;
  b[0] = 0x09;   // no such type
  EXPECT_FALSE(vi::decode(b, 36, &r, &err));
  EXPECT_EQ(err, vi::Status::Unsupp);
  b[0] = 0x03;   // a MAP shorter than its 36 readable bytes: QEMU virtio_iommu_iov_to_req's INVAL
  EXPECT_FALSE(vi::decode(b, 20, &r, &err));
  EXPECT_EQ(err, vi::Status::Inval);
  // VIRTIO_IOMMU_S_*
  EXPECT_EQ(int(vi::Status::IoErr), 1);
  EXPECT_EQ(int(vi::Status::Unsupp), 2);
  EXPECT_EQ(int(vi::Status::DevErr), 3);
  EXPECT_EQ(int(vi::Status::Inval), 4);
  EXPECT_EQ(int(vi::Status::Range), 5);
  EXPECT_EQ(int(vi::Status::NoEnt), 6);
  EXPECT_EQ(int(vi::Status::Fault), 7);
  EXPECT_EQ(int(vi::Status::NoMem), 8);
}

TEST(VirtioIommuFormat, ConfigSpaceBytes) {
  vi::Config c;
  c.page_size_mask = ~0xFFFull;
  c.input_start = 0;
  c.input_end = 0xFFFFFFFFFFull;   // 40 bits
  c.domain_start = 1;
  c.domain_end = 0xFFFF;
  c.probe_size = 512;
  c.bypass = 1;
  uint8_t b[vi::kConfigBytes];
  vi::encode(c, b);
  EXPECT_EQ(hex_of(b, 40), "00F0FFFFFFFFFFFF" "0000000000000000" "FFFFFFFFFF000000" "01000000" "FFFF0000"
                           "00020000" "01000000");
  const vi::Config back = vi::decode_config(b);
  EXPECT_EQ(back.input_end, c.input_end);
  EXPECT_EQ(back.probe_size, 512u);
}

// Guest memory for the virtqueue tests: a plain byte array.
struct ArrayView final : driver::MemoryView {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(0x10000, 0xEE);
  void read(uint64_t a, void* d, uint64_t n) const override { std::memcpy(d, bytes.data() + a, n); }
  void write(uint64_t a, const void* s, uint64_t n) override { std::memcpy(bytes.data() + a, s, n); }
};

TEST(Virtqueue, LayoutAndOneRequestRoundTrip) {
  // 4 entries at 0x1000: descriptors 64 bytes, avail 6 + 2*4 = 14 at 0x1040, used (4-aligned)
  // at 0x1050, 6 + 8*4 = 38 bytes.
  const vq::Layout l = vq::Layout::contiguous(0x1000, 4);
  EXPECT_EQ(l.desc, 0x1000u);
  EXPECT_EQ(l.avail, 0x1040u);
  EXPECT_EQ(l.used, 0x1050u);
  EXPECT_EQ(vq::validate(l), "");
  ArrayView m;
  vq::DriverSide drv(m, l);
  vq::DeviceSide dev(m, l);
  const vq::Buffer out{0x2000, 36}, in{0x2024, 4};
  auto head = drv.add(&out, 1, &in, 1);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(*head, 0);
  // Descriptor 0: addr 0x2000, len 36, NEXT, next 1; descriptor 1: 0x2024, 4, WRITE, 0.
  EXPECT_EQ(hex_of(&m.bytes[0x1000], 32), "0020000000000000" "24000000" "0100" "0100"
                                          "2420000000000000" "04000000" "0200" "0000");
  vq::DeviceSide::Chain c;
  std::string error;
  EXPECT_FALSE(dev.pop(&c, &error)) << "not published yet";
  EXPECT_EQ(drv.publish(), 1);
  EXPECT_EQ(hex_of(&m.bytes[0x1040], 6), "0000" "0100" "0000");   // flags, idx 1, ring[0] = head 0
  unsigned reads = 0;
  ASSERT_TRUE(dev.pop(&c, &error, &reads)) << error;
  EXPECT_EQ(c.head, 0);
  ASSERT_EQ(c.descs.size(), 2u);
  EXPECT_EQ(reads, 2u);
  EXPECT_EQ(c.descs[1].flags, vq::kDescFWrite);
  EXPECT_FALSE(drv.get_used().has_value());
  dev.push_used(0, 4);
  EXPECT_EQ(hex_of(&m.bytes[0x1050], 12), "0000" "0100" "00000000" "04000000");   // flags, idx 1, {id 0, len 4}
  const auto u = drv.get_used();
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 0);
  EXPECT_EQ(u->len, 4u);
  EXPECT_EQ(drv.free_descriptors(), 4u);
}

TEST(Virtqueue, IndicesRunFreeModulo65536) {
  const vq::Layout l = vq::Layout::contiguous(0x1000, 4);
  ArrayView m;
  vq::DriverSide drv(m, l);
  vq::DeviceSide dev(m, l);
  vq::DeviceSide::Chain c;
  std::string error;
  const vq::Buffer out{0x2000, 20}, in{0x2014, 4};
  for (unsigned i = 0; i < 65536 + 3; ++i) {
    ASSERT_TRUE(drv.add(&out, 1, &in, 1).has_value()) << i;
    drv.publish();
    ASSERT_TRUE(dev.pop(&c, &error)) << i << error;
    dev.push_used(c.head, 4);
    ASSERT_TRUE(drv.get_used().has_value()) << i;
  }
  // 65539 buffers: idx 65539 mod 65536 = 3 in both rings; the next slot is 3 mod 4 = 3.
  EXPECT_EQ(drv.avail_idx(), 3);
  EXPECT_EQ(dev.used_idx(), 3);
  EXPECT_EQ(l.avail_slot_addr(drv.avail_idx()), 0x1040u + 4 + 2 * 3);
}

TEST(Virtqueue, MalformedChainsAreTheDevicesError) {
  const vq::Layout l = vq::Layout::contiguous(0x1000, 4);
  ArrayView m;
  vq::DriverSide drv(m, l);
  vq::DeviceSide dev(m, l);
  const vq::Buffer out{0x2000, 20}, in{0x2014, 4};
  drv.add(&out, 1, &in, 1);
  // Descriptor 1 points back at 0 with NEXT: a loop.
  vq::write_desc(m, l, 1, vq::Desc{0x2014, 4, vq::kDescFWrite | vq::kDescFNext, 0});
  drv.publish();
  vq::DeviceSide::Chain c;
  std::string error;
  EXPECT_FALSE(dev.pop(&c, &error));
  EXPECT_NE(error.find("loops"), std::string::npos) << error;
  EXPECT_NE(vq::validate(vq::Layout{0x1000, 0x1040, 0x1050, 6}), "");   // not a power of two
}

// avail->idx more than the queue size ahead of the device's last seen index (size + 1 = 5
// here): QEMU virtqueue_num_heads' "Guest moved avail index", an error, no chain popped.
TEST(Virtqueue, AvailIndexMovedBeyondTheQueueSizeIsAnError) {
  const vq::Layout l = vq::Layout::contiguous(0x1000, 4);
  ArrayView m;
  vq::DeviceSide dev(m, l);
  vq::write_desc(m, l, 0, vq::Desc{0x2000, 20, 0, 0});
  m.write(l.avail_slot_addr(0), "\x00\x00", 2);   // head 0
  m.write(l.avail_idx_addr(), "\x05\x00", 2);
  vq::DeviceSide::Chain c;
  std::string error;
  EXPECT_FALSE(dev.pop(&c, &error));
  EXPECT_NE(error.find("more than the queue size 4"), std::string::npos) << error;
  // Exactly the queue size ahead is legal: the first head pops.
  vq::DeviceSide dev2(m, l);
  m.write(l.avail_idx_addr(), "\x04\x00", 2);
  EXPECT_TRUE(dev2.pop(&c, &error)) << error;
}

TEST(VirtioIommuChunks, NaturallyAlignedPowersOfTwo) {
  std::vector<std::pair<uint64_t, uint64_t>> got;
  const auto collect = [&](uint64_t a, uint64_t n) { got.emplace_back(a, n); };
  vmm::for_each_pow2_chunk(0x3000, 0x5FFF, collect);   // 4K at 0x3000 (its alignment), then 8K at 0x4000
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{0x3000, 0x1000}, {0x4000, 0x2000}}));
  got.clear();
  vmm::for_each_pow2_chunk(0x1000, 0x7FFF, collect);   // 4K, 8K at 0x2000, 16K at 0x4000
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{0x1000, 0x1000}, {0x2000, 0x2000}, {0x4000, 0x4000}}));
  got.clear();
  vmm::for_each_pow2_chunk(0x200000, 0x3FFFFF, collect);   // one 2M block
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{0x200000, 0x200000}}));
  got.clear();
  vmm::for_each_pow2_chunk(0, 0x2FFF, collect);   // start 0 is aligned to anything: 8K then 4K
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 0x2000}, {0x2000, 0x1000}}));
}

TEST(VirtioIommuDevice, MapUnmapReachTheHostTable) {
  SmmuRig rig;
  rig.h.run([&](Harness& h) {
    rig.boot();
    if (::testing::Test::HasFatalFailure()) return;
    Guest& g = rig.guest;
    const uint64_t marker = 0x1122334455667788ull;
    h.memory.write(kGuestRamPa + kBufGpa + 0x1008, &marker, 8);
    EXPECT_FALSE(h.read(kRid, 0x4008).ok()) << "an endpoint no domain holds is blocked";
    EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 0u);
    // [0x3000, 0x5FFF] -> GPA kBufGpa: IOAS_MAP of 4K at 0x3000 and of 8K at 0x4000.
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x3000, 0x5FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 2u);
    const DmaResult r = h.read(kRid, 0x4008);   // GPA kBufGpa + 0x1008
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, marker);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa + 0x10000)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 1u);
    // [0, 0x3FFF] holds [0x1000, 0x1FFF] (removed) and meets [0x3000, 0x5FFF] partly: RANGE.
    EXPECT_EQ(g.send(req(vi::ReqType::Unmap, 1, 0, 0x3FFF)), vi::Status::Range);
    EXPECT_EQ(rig.dev.mappings(1), 1u);
    EXPECT_TRUE(h.read(kRid, 0x4008).ok());
    // The full range: [0x3000, 0x5FFF] in its two chunks, each the host's unmap with its
    // invalidation: with range invalidation (IDR3.RIL) one TLBI_NH_VA and one CMD_SYNC each.
    EXPECT_EQ(g.send(req(vi::ReqType::Unmap, 1, 0, ~0ull)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 2u);
    EXPECT_EQ(rig.dev.last_request_host_commands(), 4u);
    EXPECT_EQ(rig.dev.mappings(1), 0u);
    EXPECT_FALSE(h.read(kRid, 0x4008).ok());
    EXPECT_EQ(rig.dev.requests(vi::ReqType::Map), 2u);
    EXPECT_EQ(rig.dev.statuses(vi::Status::Range), 1u);
  });
}

// The oracle over the device: the test reports the guest's view (as the virtio lane's guest
// driver does: a mapping at MAP, its retirement at UNMAP, complete when the guest sees the
// used entry). A DMA fills the host IOTLB; after a strict UNMAP a DMA must fault. A device
// that clears the host PTEs without invalidating the host IOTLB (VmmFault::DropHostFlush)
// leaves the entry live: that DMA is exactly one violation.
void expect_stale_dma_after_unmap(vmm::VmmFault inject, uint64_t violations) {
  SmmuRig rig(false, inject);
  common::CorrectnessOracle oracle("smmuv3");
  using Kind = common::CorrectnessOracle::SpaceKind;
  rig.h.iommu.set_observer(&oracle);
  rig.h.run([&](Harness& h) {
    rig.boot();
    if (::testing::Test::HasFatalFailure()) return;
    Guest& g = rig.guest;
    oracle.add_space(1, Kind::Stage1);
    oracle.complete(oracle.attach(kRid, std::nullopt, 1), 0);
    EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1)), vi::Status::Ok);
    oracle.map(1, 0x3000, kGuestRamPa + kBufGpa, 0x1000, common::Rights{});
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x3000, 0x3FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_TRUE(h.read(kRid, 0x3008).ok());   // the host IOTLB now holds 0x3000
    const auto change = oracle.unmap(1, 0x3000, 0x1000);
    EXPECT_EQ(g.send(req(vi::ReqType::Unmap, 1, 0x3000, 0x3FFF)), vi::Status::Ok);
    oracle.complete(change, sc_core::sc_time_stamp().value());
    sc_core::wait(10, sc_core::SC_NS);
    h.read(kRid, 0x3008);
    oracle.finish();
    EXPECT_EQ(oracle.checked(), 2u);
    EXPECT_EQ(oracle.violations(), violations);
  });
}
TEST(VirtioIommuDevice, OracleSeesNoStaleDmaAfterAStrictUnmap) { expect_stale_dma_after_unmap(vmm::VmmFault::None, 0); }
TEST(VirtioIommuDevice, OracleCatchesADeviceThatSkipsTheHostFlush) {
  expect_stale_dma_after_unmap(vmm::VmmFault::DropHostFlush, 1);
}

// A writable descriptor of 4 GiB - 1 lies outside the 64 MiB of guest RAM: QEMU's
// virtqueue_pop fails to map it (virtio_error). The device stops with no used entry and
// allocates nothing from the guest's length; later requests stay unanswered.
TEST(VirtioIommuDevice, DescriptorOutsideGuestRamBreaksTheDevice) {
  SmmuRig rig;
  rig.h.run([&](Harness&) {
    rig.boot();
    if (::testing::Test::HasFatalFailure()) return;
    Guest& g = rig.guest;
    EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1)), vi::Status::Ok);
    g.post(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa), 0xFFFFFFFFu);
    sc_core::wait(10, sc_core::SC_US);
    EXPECT_TRUE(rig.dev.broken());
    EXPECT_FALSE(g.q->get_used().has_value());
    EXPECT_EQ(rig.dev.mappings(1), 0u);
    g.post(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa));
    sc_core::wait(10, sc_core::SC_US);
    EXPECT_FALSE(g.q->get_used().has_value()) << "a broken device serves nothing until reset";
  });
}

// SMMUv3 with IDR3.RIL: TLBI_NH_VA (ASID, range) + CMD_SYNC per chunk.
TEST(VirtioIommuDevice, FullRangeUnmapOnSmmuv3) { expect_full_range_unmap<Harness>(1, 3, 6); }
TEST(VirtioIommuDevice, FullRangeUnmapOnSmmuv3TwoEndpoints) { expect_full_range_unmap<Harness>(2, 6, 12); }
// VT-d first-stage domain: a PASID-based IOTLB invalidation (page-selective, AM for 8K) +
// an invalidation wait per chunk.
TEST(VirtioIommuDevice, FullRangeUnmapOnVtd) { expect_full_range_unmap<vtdtest::Harness>(1, 3, 6); }
// host_flush = domain: the 3 unmaps clear PTEs only (3 ioctls, no command), then one more
// call: SMMUv3 TLBI_NH_ASID + CMD_SYNC; VT-d a PASID-selective IOTLB invalidation + wait.
TEST(VirtioIommuDevice, DomainFlushOnSmmuv3) { expect_full_range_unmap<Harness>(1, 4, 2, true); }
TEST(VirtioIommuDevice, DomainFlushOnSmmuv3TwoEndpoints) { expect_full_range_unmap<Harness>(2, 8, 4, true); }
TEST(VirtioIommuDevice, DomainFlushOnVtd) { expect_full_range_unmap<vtdtest::Harness>(1, 4, 2, true); }
// AMD: test_virtio_iommu_amd.cpp (its fixture's names clash with the SMMU's).

TEST(VirtioIommuDevice, ErrorStatusesFollowQemu) {
  SmmuRig rig;
  rig.h.run([&](Harness& h) {
    rig.boot();
    if (::testing::Test::HasFatalFailure()) return;
    Guest& g = rig.guest;
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 9, 0x1000, 0x1FFF, kBufGpa)), vi::Status::NoEnt) << "unknown domain";
    EXPECT_EQ(g.send(req(vi::ReqType::Unmap, 9, 0x1000, 0x1FFF)), vi::Status::NoEnt);
    EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1, 0, 0, 0, 0, 7)), vi::Status::NoEnt) << "unknown endpoint";
    EXPECT_EQ(g.send(req(vi::ReqType::Attach, 1)), vi::Status::Ok);
    // IOVAs above guest RAM's 64 MiB, so the bypass domain's RAM mapping below meets none of
    // the host tables these leave behind.
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x8001000, 0x8001FFF, kBufGpa, 0x8)), vi::Status::Inval) << "bad flags";
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x8001000, 0x8001FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x8000000, 0x8001FFF, kBufGpa)), vi::Status::Inval) << "overlap";
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x8008000, 0x8008FFF, kRamBytes)), vi::Status::IoErr) << "outside RAM";
    vi::Request bypass = req(vi::ReqType::Attach, 1);
    bypass.flags = vi::kAttachFBypass;
    EXPECT_EQ(g.send(bypass), vi::Status::Inval) << "a bypass attach to a translated domain";
    bypass.domain = 2;
    EXPECT_EQ(g.send(bypass), vi::Status::Ok) << "moves the endpoint: domain 1 is freed";
    EXPECT_FALSE(rig.dev.has_domain(1));
    // Domain 1's one mapping unmapped from the endpoint, guest RAM mapped for the bypass domain.
    EXPECT_EQ(rig.dev.last_request_ioctls(), 2u);
    const uint64_t marker = 0xA5A5000012345678ull;
    h.memory.write(kGuestRamPa + kBufGpa + 0x2010, &marker, 8);
    const DmaResult r = h.read(kRid, kBufGpa + 0x2010);   // IOVA = GPA
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, marker);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 2, 0x1000, 0x1FFF, kBufGpa)), vi::Status::Inval) << "bypass domain";
    EXPECT_EQ(g.send(req(vi::ReqType::Detach, 5)), vi::Status::Inval) << "not attached to domain 5";
    EXPECT_EQ(g.send(req(vi::ReqType::Detach, 2)), vi::Status::Ok);
    EXPECT_FALSE(rig.dev.endpoint_domain(kEndpoint).has_value());
    // PROBE: the properties (probe_size 512) before the tail; none here.
    EXPECT_EQ(g.send(req(vi::ReqType::Probe, 0), 512 + 4, 0, 512 + 4), vi::Status::Ok);
    EXPECT_EQ(g.send(req(vi::ReqType::Probe, 0, 0, 0, 0, 0, 7), 512 + 4, 0, 512 + 4), vi::Status::NoEnt);
    // A writable part larger than the output: the tail at offset 0, used length 4 (QEMU
    // writes output_size bytes); a PROBE without room for the properties: INVAL in the tail.
    EXPECT_EQ(g.send(req(vi::ReqType::Detach, 9), 64), vi::Status::Inval);
    EXPECT_EQ(g.send(req(vi::ReqType::Probe, 0), 64), vi::Status::Inval);
    vi::Request unknown = req(vi::ReqType::Unmap, 1);
    unknown.type = vi::ReqType(0x09);
    EXPECT_EQ(g.send(unknown, 4, 28), vi::Status::Unsupp);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0, 0, 0), 4, 20), vi::Status::Inval) << "short MAP";
    // A head under 4 bytes: QEMU "virtio-iommu bad head/tail size" (virtio_error), no used entry.
    g.post(req(vi::ReqType::Map, 1, 0, 0, 0), 4, 2);
    sc_core::wait(10, sc_core::SC_US);
    EXPECT_TRUE(rig.dev.broken());
    EXPECT_FALSE(g.q->get_used().has_value());
  });
}

// The device over an SMMUv3 host with the guest's endpoint attached to domain 1; then body.
void with_domain_1(const std::function<void(SmmuRig&, Harness&, Guest&)>& body) {
  SmmuRig rig;
  rig.h.run([&](Harness& h) {
    rig.boot();
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(rig.guest.send(req(vi::ReqType::Attach, 1)), vi::Status::Ok);
    body(rig, h, rig.guest);
  });
}

// virtio spec v1.2, "Device Types / IOMMU Device / Device operations / MAP request", device
// requirements: "If virt_start, phys_start or (virt_end + 1) is not aligned on the page
// granularity, the device SHOULD reject the request and set status to
// VIRTIO_IOMMU_S_RANGE". The granularity is the lowest bit of page_size_mask: ~0xFFF ->
// 0x1000. Each misaligned MAP below maps nothing (no ioctl, no stored mapping, the DMA
// faults); the aligned one maps its page with one IOMMU_IOAS_MAP.
TEST(VirtioIommuDevice, MapNotAlignedOnThePageGranularityIsRange) {
  with_domain_1([](SmmuRig& rig, Harness& h, Guest& g) {
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1800, 0x27FF, kBufGpa)), vi::Status::Range) << "virt_start 0x1800";
    EXPECT_EQ(rig.dev.last_request_ioctls(), 0u);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa + 0x800)), vi::Status::Range) << "phys_start";
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x17FF, kBufGpa)), vi::Status::Range)
        << "virt_end + 1 = 0x1800: half a page";
    EXPECT_EQ(rig.dev.last_request_ioctls(), 0u);
    EXPECT_EQ(rig.dev.mappings(1), 0u);
    EXPECT_EQ(rig.dev.statuses(vi::Status::Range), 3u);
    EXPECT_FALSE(h.read(kRid, 0x1008).ok()) << "no partial page was mapped";
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 1u);
    EXPECT_TRUE(h.read(kRid, 0x1008).ok());
  });
}

// A MAP whose arithmetic wraps 64 bits (MODEL CHOICE: the spec names no status; RANGE is its
// "out-of-range parameters"): no mapping is stored and no ioctl made.
// - [0, 2^64 - 1]: 2^64 bytes, a size no 64-bit length holds (virt_end + 1 wraps to 0, which
//   the granularity check alone would take for aligned);
// - [0x1000, 2^64 - 1] at phys 0x100000: phys_end = 0x100000 + (2^64 - 1 - 0x1000) wraps;
// - [2^64 - 0x2000, 2^64 - 1] at phys 2^64 - 0x1000: phys_end = 2^64 - 0x1000 + 0x1FFF wraps.
TEST(VirtioIommuDevice, MapWhoseRangeWrapsIsRange) {
  with_domain_1([](SmmuRig& rig, Harness& h, Guest& g) {
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0, ~0ull, 0)), vi::Status::Range) << "the full 64-bit range";
    EXPECT_EQ(rig.dev.mappings(1), 0u);
    EXPECT_EQ(rig.dev.last_request_ioctls(), 0u);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, ~0ull, 0x100000)), vi::Status::Range);
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, ~0ull - 0x1FFF, ~0ull, ~0ull - 0xFFF)), vi::Status::Range);
    EXPECT_EQ(rig.dev.mappings(1), 0u);
    EXPECT_EQ(rig.dev.statuses(vi::Status::Range), 3u);
    EXPECT_FALSE(h.read(kRid, 0x1008).ok());
    // The domain still works: a page at the bottom maps.
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, 0x1000, 0x1FFF, kBufGpa)), vi::Status::Ok);
    EXPECT_EQ(rig.dev.mappings(1), 1u);
    // Top of the 64-bit input range: legal for the device (input_range ends at 2^64 - 1);
    // the host's domain cannot hold it, so the host map fails: IOERR.
    EXPECT_EQ(g.send(req(vi::ReqType::Map, 1, ~0ull - 0xFFF, ~0ull, kBufGpa)), vi::Status::IoErr);
  });
}

// The guest driver over the device on an SMMUv3 host, its queue and request buffers in guest
// RAM; the test binds guest.mmio (to the device, or through a transport of its own).
struct DriverRig {
  Harness h;
  vmm::GuestRam ram{h.memory, kGuestRamPa, kRamBytes};
  vmm::Iommufd fd{{vmm::HostIommu{&h.drv, &h.drv}}};
  vmm::VirtioIommuDevice dev{"viommu", DeviceRig<Harness>::config(false), ram, fd, h.drv};
  driver::VirtioIommuDriver guest{"guest_driver", guest_config(), ram};
  static driver::VirtioIommuDriverConfig guest_config() {
    driver::VirtioIommuDriverConfig gc;
    gc.memory.table_pool_base = 16ull << 20;
    gc.memory.table_pool_bytes = 8ull << 20;
    gc.memory.guest_pool_ipa = gc.memory.guest_pool_bytes = 0;
    gc.timing.mmio_write_ns = gc.timing.mmio_read_ns = 0;
    return gc;
  }
  DriverRig() { guest.set_trapping_doorbell(&dev); }
  // The host driver, kRid as the device's endpoint, the guest driver, and a stage-1 domain *d.
  void boot(driver::DomainId* d) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    uint32_t id = 0;
    ASSERT_EQ(fd.bind_device(kRid, 0, &id), Errno::Ok);
    IOMMUSIM_ASSERT_OK(dev.add_endpoint(kRid, id));
    IOMMUSIM_ASSERT_OK(guest.init());
    std::string why;
    const auto domain = guest.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
    ASSERT_TRUE(domain.has_value()) << why;
    *d = *domain;
  }
};

// The guest driver over the device: a domain mapped before its first attach has its
// mappings replayed (Linux viommu_replay_mappings), so the DMA after the attach translates;
// an unmap that is not whole mappings fails and changes nothing.
TEST(VirtioIommuDriver, MappingsBeforeAttachAreReplayed) {
  DriverRig rig;
  rig.guest.mmio.bind(rig.dev.mmio);
  rig.h.run([&](Harness& h) {
    driver::DomainId d = 0;
    rig.boot(&d);
    if (::testing::Test::HasFatalFailure()) return;
    auto& guest = rig.guest;
    auto& dev = rig.dev;
    IOMMUSIM_ASSERT_OK(guest.map(d, 0x10000, kBufGpa, 0x2000, {}, 4096));
    EXPECT_EQ(dev.requests(vi::ReqType::Map), 0u) << "no endpoint yet: nothing sent";
    IOMMUSIM_ASSERT_OK(guest.attach(kRid, std::nullopt, d));
    EXPECT_EQ(dev.requests(vi::ReqType::Probe), 1u);
    EXPECT_EQ(dev.requests(vi::ReqType::Attach), 1u);
    EXPECT_EQ(dev.requests(vi::ReqType::Map), 1u) << "the mapping replayed after the ATTACH";
    const uint64_t marker = 0x0BADF00D12345678ull;
    h.memory.write(kGuestRamPa + kBufGpa + 0x1008, &marker, 8);
    DmaResult r = h.read(kRid, 0x11008);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, marker);
    EXPECT_FALSE(guest.unmap(d, 0x10000, 0x1000).ok) << "half of the one mapping";
    EXPECT_EQ(dev.requests(vi::ReqType::Unmap), 0u);
    EXPECT_TRUE(h.read(kRid, 0x11008).ok()) << "the failed unmap changed nothing";
    IOMMUSIM_ASSERT_OK(guest.unmap(d, 0x10000, 0x2000));
    EXPECT_EQ(dev.requests(vi::ReqType::Unmap), 1u);
    // The unmap's barrier (the oracle's completion time) is the device's used-ring write,
    // before the guest's poll saw it: a stale DMA in between is a violation.
    EXPECT_EQ(guest.last_barrier_ps(), dev.last_completion_ps());
    EXPECT_LT(guest.last_barrier_ps(), common::now_ps());
    EXPECT_FALSE(h.read(kRid, 0x11008).ok());
    EXPECT_EQ(guest.invalidations().records().size(), 1u) << "the unmap; attach and maps are not logged";
  });
}

// Between the guest driver and the device: forwards every MMIO access, learns where the
// request queue's used ring is from the guest's QueueDevice writes, and, once armed, rewrites
// the id of the next used element the device returns (during the QueueNotify write, the
// device serving inside it) to `bad_id(real id)`: a device returning a bogus id.
struct UsedIdCorruptor : sc_core::sc_module {
  tlm_utils::simple_target_socket<UsedIdCorruptor> from_guest{"from_guest"};
  tlm_utils::simple_initiator_socket<UsedIdCorruptor> to_device{"to_device"};
  vmm::GuestRam& ram;
  uint64_t used = 0;
  uint16_t size = 0;
  std::function<uint32_t(uint32_t)> bad_id;   // empty: not armed
  UsedIdCorruptor(sc_core::sc_module_name n, vmm::GuestRam& r) : sc_module(n), ram(r) {
    from_guest.register_b_transport(this, &UsedIdCorruptor::b_transport);
  }
  void b_transport(tlm::tlm_generic_payload& p, sc_core::sc_time& d) {
    using namespace vmm::virtio_mmio;
    uint32_t v = 0;
    if (p.is_write() && p.get_data_length() == 4) std::memcpy(&v, p.get_data_ptr(), 4);
    if (p.is_write() && p.get_address() == kQueueNum) size = uint16_t(v);
    if (p.is_write() && p.get_address() == kQueueDeviceLow) used = (used & ~0xFFFFFFFFull) | v;
    if (p.is_write() && p.get_address() == kQueueDeviceHigh) used = (used & 0xFFFFFFFFull) | uint64_t(v) << 32;
    to_device->b_transport(p, d);
    if (!(p.is_write() && p.get_address() == kQueueNotify && bad_id)) return;
    uint8_t idx[2], id[4];
    ram.read(used + 2, idx, 2);
    const uint16_t last = uint16_t(vi::get_le(idx, 2) - 1);   // the element just written
    const uint64_t slot = used + 4 + 8ull * (last & (size - 1));
    ram.read(slot, id, 4);
    vi::put_le(id, bad_id(uint32_t(vi::get_le(id, 4))), 4);
    ram.write(slot, id, 4);
    bad_id = nullptr;
  }
};

// A device that returns a used element whose id names no outstanding head is the device's
// error, as Linux's virtqueue_get_buf_ctx_split reports it (BAD_RING): the guest's operation
// fails naming the id, and later ones fail too (the queue is broken) instead of reading a
// wrong slot, throwing or waiting for ever.
void expect_bad_used_id_fails(const std::function<uint32_t(uint32_t)>& bad_id, const std::string& why) {
  DriverRig rig;
  UsedIdCorruptor corrupt("corrupt", rig.ram);
  rig.guest.mmio.bind(corrupt.from_guest);
  corrupt.to_device.bind(rig.dev.mmio);
  rig.h.run([&](Harness&) {
    driver::DomainId d = 0;
    rig.boot(&d);
    if (::testing::Test::HasFatalFailure()) return;
    auto& guest = rig.guest;
    auto& dev = rig.dev;
    IOMMUSIM_ASSERT_OK(guest.attach(kRid, std::nullopt, d));
    corrupt.bad_id = bad_id;
    const driver::Status s = guest.map(d, 0x10000, kBufGpa, 0x1000, {}, 4096);
    EXPECT_FALSE(s.ok);
    EXPECT_NE(s.error.find(why), std::string::npos) << s.error;
    EXPECT_EQ(dev.requests(vi::ReqType::Map), 1u) << "the device served the MAP; only its used id is bad";
    const driver::Status later = guest.map(d, 0x20000, kBufGpa, 0x1000, {}, 4096);
    EXPECT_FALSE(later.ok) << "a broken queue returns nothing more";
    EXPECT_NE(later.error.find(why), std::string::npos) << later.error;
  });
}
// The queue has 256 entries (QueueNumMax): id 300 is out of range.
TEST(VirtioIommuDriver, AUsedIdOutOfRangeIsTheDevicesError) {
  expect_bad_used_id_fails([](uint32_t) { return 300u; }, "used element id 300 out of range (queue size 256)");
}
// The MAP's chain is its head and the tail's descriptor; one past the head is no
// outstanding head (only the MAP is in flight).
TEST(VirtioIommuDriver, AUsedIdThatIsNotAHeadIsTheDevicesError) {
  expect_bad_used_id_fails([](uint32_t real) { return (real + 1) % 256; }, "is not a head");
}

}  // namespace
}  // namespace iommusim::test
