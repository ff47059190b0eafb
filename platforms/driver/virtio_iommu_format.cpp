#include "platforms/driver/virtio_iommu_format.h"

#include <cstring>

namespace iommusim::driver::virtio_iommu {

const char* status_name(Status s) {
  static const char* const kNames[kStatusCount] = {"ok",    "ioerr", "unsupp", "deverr", "inval",
                                                    "range", "noent", "fault",  "nomem"};
  return unsigned(s) < kStatusCount ? kNames[unsigned(s)] : "unknown";
}

const char* type_name(ReqType t) {
  switch (t) {
    case ReqType::Attach: return "attach";
    case ReqType::Detach: return "detach";
    case ReqType::Map: return "map";
    case ReqType::Unmap: return "unmap";
    case ReqType::Probe: return "probe";
  }
  return "unknown";
}

size_t body_bytes(ReqType t) {
  switch (t) {
    case ReqType::Attach: return kAttachBody;
    case ReqType::Detach: return kDetachBody;
    case ReqType::Map: return kMapBody;
    case ReqType::Unmap: return kUnmapBody;
    case ReqType::Probe: return kProbeBody;
  }
  return 0;
}

size_t encode(const Request& r, uint8_t* out) {
  const size_t n = body_bytes(r.type);
  std::memset(out, 0, n);
  out[0] = uint8_t(r.type);
  switch (r.type) {
    case ReqType::Attach:
    case ReqType::Detach:
      put_le(out + 4, r.domain, 4);
      put_le(out + 8, r.endpoint, 4);
      if (r.type == ReqType::Attach) put_le(out + 12, r.flags, 4);   // DETACH: reserved[8]
      break;
    case ReqType::Map:
      put_le(out + 4, r.domain, 4);
      put_le(out + 8, r.virt_start, 8);
      put_le(out + 16, r.virt_end, 8);
      put_le(out + 24, r.phys_start, 8);
      put_le(out + 32, r.flags, 4);
      break;
    case ReqType::Unmap:
      put_le(out + 4, r.domain, 4);
      put_le(out + 8, r.virt_start, 8);
      put_le(out + 16, r.virt_end, 8);
      break;
    case ReqType::Probe:
      put_le(out + 4, r.endpoint, 4);
      break;
  }
  return n;
}

bool decode(const uint8_t* in, size_t len, Request* r, Status* error) {
  // QEMU virtio_iommu_iov_to_req: a readable part shorter than head and body is INVAL (a
  // head under 4 bytes is virtio_error before that, the device's own check).
  if (len < kHeadBytes) { *error = Status::Inval; return false; }
  const uint8_t type = in[0];
  if (type < uint8_t(ReqType::Attach) || type > uint8_t(ReqType::Probe)) { *error = Status::Unsupp; return false; }
  *r = Request{};
  r->type = ReqType(type);
  if (len < body_bytes(r->type)) { *error = Status::Inval; return false; }
  switch (r->type) {
    case ReqType::Attach:
    case ReqType::Detach:
      r->domain = uint32_t(get_le(in + 4, 4));
      r->endpoint = uint32_t(get_le(in + 8, 4));
      if (r->type == ReqType::Attach) r->flags = uint32_t(get_le(in + 12, 4));
      break;
    case ReqType::Map:
      r->domain = uint32_t(get_le(in + 4, 4));
      r->virt_start = get_le(in + 8, 8);
      r->virt_end = get_le(in + 16, 8);
      r->phys_start = get_le(in + 24, 8);
      r->flags = uint32_t(get_le(in + 32, 4));
      break;
    case ReqType::Unmap:
      r->domain = uint32_t(get_le(in + 4, 4));
      r->virt_start = get_le(in + 8, 8);
      r->virt_end = get_le(in + 16, 8);
      break;
    case ReqType::Probe:
      r->endpoint = uint32_t(get_le(in + 4, 4));
      break;
  }
  return true;
}

void encode(const Config& c, uint8_t* out) {
  std::memset(out, 0, kConfigBytes);
  put_le(out + 0, c.page_size_mask, 8);
  put_le(out + 8, c.input_start, 8);
  put_le(out + 16, c.input_end, 8);
  put_le(out + 24, c.domain_start, 4);
  put_le(out + 28, c.domain_end, 4);
  put_le(out + 32, c.probe_size, 4);
  out[36] = c.bypass;
}

Config decode_config(const uint8_t* in) {
  Config c;
  c.page_size_mask = get_le(in + 0, 8);
  c.input_start = get_le(in + 8, 8);
  c.input_end = get_le(in + 16, 8);
  c.domain_start = uint32_t(get_le(in + 24, 4));
  c.domain_end = uint32_t(get_le(in + 28, 4));
  c.probe_size = uint32_t(get_le(in + 32, 4));
  c.bypass = in[36];
  return c;
}

void encode_resv_mem(uint8_t subtype, uint64_t start, uint64_t end, uint8_t* out) {
  std::memset(out, 0, kResvMemBytes);
  put_le(out + 0, kProbeTResvMem, 2);
  put_le(out + 2, kResvMemBytes - 4, 2);   // length: what follows the property header
  out[4] = subtype;
  put_le(out + 8, start, 8);
  put_le(out + 16, end, 8);
}

}  // namespace iommusim::driver::virtio_iommu
