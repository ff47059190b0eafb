// The virtio-iommu device's formats (virtio spec v1.2, "IOMMU device"; Linux
// include/uapi/linux/virtio_iommu.h): its feature bits, config space, the requests a guest
// driver puts on the request virtqueue and the status its device writes back. Encoders and
// decoders shared by the guest driver (platforms/driver) and the VMM's device
// (platforms/vmm/virtio_iommu.h), so both sides read the same bytes.
//
// What it models
// - Every request is a device-readable part (head {u8 type, u8 reserved[3]} and the body)
//   followed by a device-writable part (PROBE: its properties, then the tail; others: the
//   tail {u8 status, u8 reserved[3]}), little endian, at the offsets of the uapi structs:
//   ATTACH / DETACH 24 bytes (tail at 20), MAP 40 (tail at 36), UNMAP 32 (tail at 28),
//   PROBE 72 + probe_size + 4.
// - virt_end is inclusive (a MAP of one 4 KiB page at 0x10000 has virt_end 0x10FFF).
// - MAP flags as the uapi has them: READ b0, WRITE b1, MMIO b2 (VIRTIO_IOMMU_MAP_F_MASK).
//
// What it does not model: the event virtqueue's fault records, PROBE properties other than
// RESV_MEM, the page-table attach extensions of unmerged drafts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace iommusim::driver::virtio_iommu {

// Feature bits (VIRTIO_IOMMU_F_*).
enum Feature : unsigned {
  kFInputRange = 0, kFDomainRange = 1, kFMapUnmap = 2, kFBypass = 3, kFProbe = 4, kFMmio = 5, kFBypassConfig = 6,
};
// VIRTIO_F_VERSION_1: the virtio 1.x interface (modern devices).
inline constexpr unsigned kFVersion1 = 32;

// Request types (VIRTIO_IOMMU_T_*).
enum class ReqType : uint8_t { Attach = 0x01, Detach = 0x02, Map = 0x03, Unmap = 0x04, Probe = 0x05 };
// Status codes (VIRTIO_IOMMU_S_*).
enum class Status : uint8_t {
  Ok = 0x00, IoErr = 0x01, Unsupp = 0x02, DevErr = 0x03, Inval = 0x04, Range = 0x05, NoEnt = 0x06, Fault = 0x07,
  NoMem = 0x08,
};
inline constexpr unsigned kStatusCount = 9;
const char* status_name(Status s);
const char* type_name(ReqType t);

inline constexpr uint32_t kAttachFBypass = 1u << 0;   // VIRTIO_IOMMU_ATTACH_F_BYPASS
inline constexpr uint32_t kMapFRead = 1u << 0, kMapFWrite = 1u << 1, kMapFMmio = 1u << 2;
inline constexpr uint32_t kMapFMask = kMapFRead | kMapFWrite | kMapFMmio;   // VIRTIO_IOMMU_MAP_F_MASK

// Sizes of the device-readable part (head + body) and of the tail.
inline constexpr size_t kHeadBytes = 4, kTailBytes = 4;   // virtio_iommu_req_head / _tail
inline constexpr size_t kAttachBody = 20, kDetachBody = 20, kMapBody = 36, kUnmapBody = 28, kProbeBody = 72;
// The largest request body: a guest driver's per-request buffer.
inline constexpr size_t kMaxBody = kProbeBody;
size_t body_bytes(ReqType t);

// PROBE properties (struct virtio_iommu_probe_property {le16 type, le16 length}); type's low
// 12 bits (VIRTIO_IOMMU_PROBE_T_MASK); NONE ends the list.
inline constexpr uint16_t kProbeTNone = 0, kProbeTResvMem = 1, kProbeTMask = 0xFFF;
inline constexpr uint8_t kResvMemReserved = 0, kResvMemMsi = 1;   // VIRTIO_IOMMU_RESV_MEM_T_*
inline constexpr size_t kResvMemBytes = 24;   // struct virtio_iommu_probe_resv_mem, header included

// One request's fields; which ones a type uses: ATTACH {domain, endpoint, flags}, DETACH
// {domain, endpoint}, MAP {domain, virt_start, virt_end, phys_start, flags}, UNMAP {domain,
// virt_start, virt_end}, PROBE {endpoint}.
struct Request {
  ReqType type = ReqType::Map;
  uint32_t domain = 0, endpoint = 0, flags = 0;
  uint64_t virt_start = 0, virt_end = 0, phys_start = 0;
};
// Writes r's head and body (body_bytes(r.type) bytes, reserved bytes zero) into `out`.
size_t encode(const Request& r, uint8_t* out);
// Reads a request from the device-readable bytes `in` (`len` of them). Fails (false, *why
// set) on an unknown type (the device answers UNSUPP) or a part shorter than the type's
// (DEVERR); *r has the type when known.
bool decode(const uint8_t* in, size_t len, Request* r, Status* error);

// struct virtio_iommu_config, little endian: page_size_mask @0, input_range {start @8,
// end @16}, domain_range {start @24, end @28}, probe_size @32, bypass @36; 40 bytes.
struct Config {
  uint64_t page_size_mask = 0;
  uint64_t input_start = 0, input_end = 0;
  uint32_t domain_start = 0, domain_end = 0;
  uint32_t probe_size = 0;
  uint8_t bypass = 0;
};
inline constexpr size_t kConfigBytes = 40;
void encode(const Config& c, uint8_t* out);
Config decode_config(const uint8_t* in);

// One RESV_MEM property at `out` (kResvMemBytes): subtype, [start, end] inclusive.
void encode_resv_mem(uint8_t subtype, uint64_t start, uint64_t end, uint8_t* out);

// Little-endian field access, for both sides.
inline void put_le(uint8_t* p, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) p[i] = uint8_t(v >> (8 * i));
}
inline uint64_t get_le(const uint8_t* p, unsigned bytes) {
  uint64_t v = 0;
  for (unsigned i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace iommusim::driver::virtio_iommu
