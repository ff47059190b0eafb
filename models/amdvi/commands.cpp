#include "models/amdvi/commands.h"

#include <cassert>
#include <initializer_list>
#include <utility>

#include "models/common/bits.h"

namespace iommusim::amdvi {
namespace {

using common::Field;
using common::mask;

using common::reject;

// ---- u64[0] (data[0] | data[1] << 32) ----
using OpcodeF = Field<63, 60>;
using DeviceId = Field<15, 0>;
// COMPLETION_WAIT
using CwStore = Field<0, 0>;
using CwInterrupt = Field<1, 1>;
using CwFlush = Field<2, 2>;
using CwStoreAddr = Field<51, 3>;
// INVALIDATE_IOMMU_PAGES
using IpPasid = Field<19, 0>;
using IpDomainId = Field<47, 32>;
// INVALIDATE_IOTLB_PAGES (Linux build_inv_iotlb_pages; PASID[19:16] inferred)
using ItPasid15_8 = Field<23, 16>;
using ItMaxpend = Field<31, 24>;
using ItQueueId = Field<47, 32>;
using ItPasid7_0 = Field<55, 48>;
using ItPasid19_16 = Field<59, 56>;
// PREFETCH_IOMMU_PAGES / COMPLETE_PPR_REQUEST
using PfCount = Field<31, 24>;
using Pasid51_32 = Field<51, 32>;

// ---- u64[1] (data[2] | data[3] << 32) ----
using SizeF = Field<0, 0>;
using Pde = Field<1, 1>;
using Gn = Field<2, 2>;
using ItType = Field<5, 4>;
using PfInval = Field<4, 4>;
using Address = Field<63, 12>;
using PprTag = Field<40, 32>;     // data[3][8:0]
using PprStatus = Field<47, 44>;  // data[3][15:12]

constexpr uint64_t kPageBytes = 0x1000;
constexpr uint64_t kPageOffset = kPageBytes - 1;
constexpr unsigned kMaxRangeBit = 51;  // address bits above 51 are sign extension

// Reserved bits, as [hi:lo] of one quadword; reported with 128-bit numbering.
struct Rsvd {
  unsigned word, hi, lo;
};

bool reserved_clear(const CmdWords& w, std::initializer_list<Rsvd> fields, const char* name, std::string* why) {
  for (const Rsvd& r : fields) {
    if (w[r.word] & mask(r.hi, r.lo)) {
      if (why) {
        *why = std::string(name) + ": reserved bits [" + std::to_string(r.hi + 64 * r.word) + ":" +
               std::to_string(r.lo + 64 * r.word) + "] set";
      }
      return false;
    }
  }
  return true;
}

CmdWords header(Opcode op) {
  CmdWords c{};
  OpcodeF::put(c[0], static_cast<uint8_t>(op));
  return c;
}

bool too_wide(uint64_t value, unsigned bits) { return bits < 64 && (value >> bits) != 0; }

}  // namespace

uint64_t inv_address(uint64_t address, uint64_t size) {
  assert(size != 0 && "an invalidation covers at least one byte");
  // One page when the range does not cross a 4 KB boundary (Linux iommu_num_pages == 1).
  if (size <= kPageBytes - (address & kPageOffset)) return address & ~kPageOffset;
  const uint64_t end = address + size - 1;
  const unsigned msb_diff = 63u - static_cast<unsigned>(__builtin_clzll(end ^ address));
  const uint64_t a = msb_diff > kMaxRangeBit ? kInvAllPagesSize : address | ((uint64_t{1} << msb_diff) - 1);
  return (a & ~kPageOffset) | 1u;  // S=1
}

InvRange inv_range(uint64_t address, bool s) {
  const uint64_t page = address & ~kPageOffset;
  if (!s) return {page, page + kPageOffset};
  const uint64_t ones = address | kPageOffset;
  if (ones == ~uint64_t{0}) return {0, ~uint64_t{0}};
  const unsigned first_zero = static_cast<unsigned>(__builtin_ctzll(~ones));
  if (first_zero >= kMaxRangeBit) return {0, ~uint64_t{0}};
  const uint64_t bytes = uint64_t{1} << (first_zero + 1);
  const uint64_t base = address & ~(bytes - 1);
  return {base, base + bytes - 1};
}

CmdWords cmd_completion_wait(bool store, bool interrupt, uint64_t store_addr, uint64_t store_data, bool flush) {
  assert((store_addr & 7) == 0 && "completion store address is 8-byte aligned");
  CmdWords c = header(Opcode::CompletionWait);
  CwStore::put(c[0], store);
  CwInterrupt::put(c[0], interrupt);
  CwFlush::put(c[0], flush);
  CwStoreAddr::put_address(c[0], store_addr);
  c[1] = store_data;
  return c;
}

CmdWords cmd_inv_devtab_entry(uint16_t device_id) {
  CmdWords c = header(Opcode::InvalidateDevtabEntry);
  DeviceId::put(c[0], device_id);
  return c;
}

CmdWords cmd_inv_iommu_pages(uint16_t domain_id, uint64_t address, uint64_t size, bool pde, bool gn,
                             uint32_t pasid) {
  CmdWords c = header(Opcode::InvalidateIommuPages);
  IpDomainId::put(c[0], domain_id);
  if (gn) IpPasid::put(c[0], pasid);
  c[1] = inv_address(address, size);  // Address[63:12] | S
  Pde::put(c[1], pde);
  Gn::put(c[1], gn);
  return c;
}

CmdWords cmd_inv_iotlb_pages(uint16_t device_id, uint8_t maxpend, uint64_t address, uint64_t size, bool gn,
                             uint32_t pasid) {
  CmdWords c = header(Opcode::InvalidateIotlbPages);
  DeviceId::put(c[0], device_id);
  ItMaxpend::put(c[0], maxpend);
  ItQueueId::put(c[0], device_id);
  if (gn) {
    assert(!too_wide(pasid, 20) && "PASID is at most 20 bits");
    ItPasid15_8::put(c[0], common::extract(pasid, 15, 8));
    ItPasid7_0::put(c[0], common::extract(pasid, 7, 0));
    ItPasid19_16::put(c[0], common::extract(pasid, 19, 16));
  }
  c[1] = inv_address(address, size);
  Gn::put(c[1], gn);
  return c;
}

CmdWords cmd_inv_interrupt_table(uint16_t device_id) {
  CmdWords c = header(Opcode::InvalidateInterruptTable);
  DeviceId::put(c[0], device_id);
  return c;
}

CmdWords cmd_prefetch_iommu_pages(uint16_t device_id, uint8_t pf_count, uint64_t address, bool s, bool inval,
                                  bool gn, uint32_t pasid) {
  CmdWords c = header(Opcode::PrefetchIommuPages);
  DeviceId::put(c[0], device_id);
  PfCount::put(c[0], pf_count);
  if (gn) Pasid51_32::put(c[0], pasid);
  Address::put(c[1], address >> 12);  // (put_address on a Hi=63 field warns in bits.h)
  SizeF::put(c[1], s);
  Gn::put(c[1], gn);
  PfInval::put(c[1], inval);
  return c;
}

CmdWords cmd_complete_ppr(uint16_t device_id, uint32_t pasid, uint8_t status, uint16_t tag, bool gn) {
  CmdWords c = header(Opcode::CompletePprRequest);
  DeviceId::put(c[0], device_id);
  if (gn) {
    Pasid51_32::put(c[0], pasid);
    Gn::put(c[1], true);
  }
  PprTag::put(c[1], tag);
  PprStatus::put(c[1], status);
  return c;
}

CmdWords cmd_inv_iommu_all() { return header(Opcode::InvalidateIommuAll); }

std::optional<Command> decode_command(const CmdWords& w, const Caps& caps, std::string* why) {
  const auto raw_op = static_cast<uint8_t>(OpcodeF::get(w[0]));
  Command c;
  c.op = static_cast<Opcode>(raw_op);
  if (raw_op == 0 || raw_op > static_cast<uint8_t>(Opcode::InvalidateIommuAll)) {
    static const char kHex[] = "0123456789ABCDEF";
    return reject(why, std::string("unknown opcode 0x") + kHex[raw_op & 0xF]);
  }
  const char* name = opcode_name(c.op);
  const std::string sname = name;

  switch (c.op) {
    case Opcode::CompletionWait:
      if (!reserved_clear(w, {{0, 59, 52}}, name, why)) return std::nullopt;
      c.store = CwStore::get(w[0]);
      c.interrupt = CwInterrupt::get(w[0]);
      c.flush = CwFlush::get(w[0]);
      c.store_addr = CwStoreAddr::get_address(w[0]);
      c.store_data = w[1];
      return c;

    case Opcode::InvalidateDevtabEntry:
    case Opcode::InvalidateInterruptTable:
      if (!reserved_clear(w, {{0, 59, 16}, {1, 63, 0}}, name, why)) return std::nullopt;
      c.device_id = DeviceId::get(w[0]);
      return c;

    case Opcode::InvalidateIommuPages:
      if (!reserved_clear(w, {{0, 31, 20}, {0, 59, 48}, {1, 11, 3}}, name, why)) return std::nullopt;
      c.domain_id = IpDomainId::get(w[0]);
      c.s = SizeF::get(w[1]);
      c.pde = Pde::get(w[1]);
      c.gn = Gn::get(w[1]);
      c.address = Address::get_address(w[1]);
      if (c.gn) {
        if (!caps.gt) return reject(why, sname + ": GN=1 without EFR.GTSup");
        c.pasid = IpPasid::get(w[0]);
      }
      break;

    case Opcode::InvalidateIotlbPages:
      if (!reserved_clear(w, {{1, 1, 1}, {1, 3, 3}, {1, 11, 6}}, name, why)) return std::nullopt;
      if (ItType::get(w[1]) != 0) return reject(why, sname + ": Type != 0 not modelled (InvIotlbTypeSup)");
      c.device_id = DeviceId::get(w[0]);
      c.maxpend = ItMaxpend::get(w[0]);
      c.queue_id = ItQueueId::get(w[0]);
      c.s = SizeF::get(w[1]);
      c.gn = Gn::get(w[1]);
      c.address = Address::get_address(w[1]);
      if (c.gn) {
        c.pasid = static_cast<uint32_t>((ItPasid19_16::get(w[0]) << 16) | (ItPasid15_8::get(w[0]) << 8) |
                                        ItPasid7_0::get(w[0]));
      }
      break;

    case Opcode::PrefetchIommuPages:
      if (!reserved_clear(w, {{0, 23, 16}, {0, 59, 52}, {1, 1, 1}, {1, 3, 3}, {1, 11, 5}}, name, why))
        return std::nullopt;
      if (!caps.prefetch) return reject(why, sname + " without EFR.PreFSup");
      c.device_id = DeviceId::get(w[0]);
      c.pf_count = PfCount::get(w[0]);
      c.s = SizeF::get(w[1]);
      c.gn = Gn::get(w[1]);
      c.inval = PfInval::get(w[1]);
      c.address = Address::get_address(w[1]);
      if (c.gn) {
        if (!caps.gt) return reject(why, sname + ": GN=1 without EFR.GTSup");
        c.pasid = Pasid51_32::get(w[0]);
      }
      break;

    case Opcode::CompletePprRequest:
      // data[3][11:9] belong to the spec's 16-bit completion field: not reserved.
      if (!reserved_clear(w, {{0, 31, 16}, {0, 59, 52}, {1, 1, 0}, {1, 31, 3}, {1, 63, 48}}, name, why))
        return std::nullopt;
      if (!caps.ppr) return reject(why, sname + " without EFR.PPRSup");
      c.device_id = DeviceId::get(w[0]);
      c.gn = Gn::get(w[1]);
      c.completion_tag = PprTag::get(w[1]);
      c.ppr_status = PprStatus::get(w[1]);
      if (c.gn) c.pasid = Pasid51_32::get(w[0]);
      break;

    case Opcode::InvalidateIommuAll:
      if (!reserved_clear(w, {{0, 59, 0}, {1, 63, 0}}, name, why)) return std::nullopt;
      if (!caps.ia) return reject(why, sname + " without EFR.IASup");
      return c;
  }

  if (c.gn && too_wide(c.pasid, caps.pasid_bits())) return reject(why, sname + ": PASID wider than EFR.PASmax");
  return c;
}

const char* opcode_name(Opcode op) {
  switch (op) {
    case Opcode::CompletionWait: return "COMPLETION_WAIT";
    case Opcode::InvalidateDevtabEntry: return "INVALIDATE_DEVTAB_ENTRY";
    case Opcode::InvalidateIommuPages: return "INVALIDATE_IOMMU_PAGES";
    case Opcode::InvalidateIotlbPages: return "INVALIDATE_IOTLB_PAGES";
    case Opcode::InvalidateInterruptTable: return "INVALIDATE_INTERRUPT_TABLE";
    case Opcode::PrefetchIommuPages: return "PREFETCH_IOMMU_PAGES";
    case Opcode::CompletePprRequest: return "COMPLETE_PPR_REQUEST";
    case Opcode::InvalidateIommuAll: return "INVALIDATE_IOMMU_ALL";
  }
  return "UNKNOWN";
}

std::vector<std::pair<uint8_t, std::string>> command_type_names() {
  std::vector<std::pair<uint8_t, std::string>> out;
  for (Opcode op : {Opcode::CompletionWait, Opcode::InvalidateDevtabEntry, Opcode::InvalidateIommuPages,
                    Opcode::InvalidateIotlbPages, Opcode::InvalidateInterruptTable, Opcode::PrefetchIommuPages,
                    Opcode::CompletePprRequest, Opcode::InvalidateIommuAll})
    out.emplace_back(uint8_t(op), opcode_name(op));
  return out;
}

}  // namespace iommusim::amdvi
