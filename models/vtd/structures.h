// VT-d scalable-mode translation structures: root entry, scalable-mode context
// entry, PASID directory entry and PASID table entry, plus the table-index helpers
// a walker needs (Intel VT-d architecture specification, chapter 9: translation
// structure formats; Linux intel/pasid.h; QEMU masks).
// Models: every field of those entries; reserved-bit and reserved-encoding checks that the
// model turns into the SM fault reasons (faults.h: 0x3A, 0x42, 0x52, 0x5A, 0x5B).
// Does not model: legacy-mode context entries, the PASID-entry fields Linux never
// writes (memory type, PAT, ERE, ...: their bits are checked as reserved), paging
// entries (VT-d sections 9.7/9.8: models/pagetable has those formats).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace iommusim::vtd {

constexpr unsigned kPageShift = 12;
constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;
// Decoders also reject table pointers with bits at or above `haw` (host address width);
// the default checks nothing.
constexpr unsigned kNoHawCheck = 64;

// ---- Requester ID (source ID) = bus:devfn ----
constexpr uint16_t make_sid(uint8_t bus, uint8_t devfn) { return static_cast<uint16_t>(bus << 8 | devfn); }
constexpr uint8_t sid_bus(uint16_t sid) { return static_cast<uint8_t>(sid >> 8); }
constexpr uint8_t sid_devfn(uint16_t sid) { return static_cast<uint8_t>(sid & 0xFF); }

// ---- Table geometry and indexing ----
// Root table: 256 x 16 B, indexed by bus.
constexpr unsigned kRootEntryBytes = 16, kRootEntries = 256;
constexpr unsigned root_index(uint8_t bus) { return bus; }
constexpr uint64_t root_entry_offset(uint8_t bus) { return uint64_t{root_index(bus)} * kRootEntryBytes; }
// Scalable-mode context tables: 32 B entries, so a 4 KiB table holds 128 devfns; the
// root entry's lower pointer covers devfn 0-127 and the upper one devfn 128-255.
constexpr unsigned kSmContextEntryBytes = 32, kSmContextEntries = 128;
constexpr bool sm_context_in_upper(uint8_t devfn) { return devfn >= kSmContextEntries; }
constexpr unsigned sm_context_index(uint8_t devfn) { return devfn % kSmContextEntries; }
constexpr uint64_t sm_context_entry_offset(uint8_t devfn) {
  return uint64_t{sm_context_index(devfn)} * kSmContextEntryBytes;
}
// PASID directory (8 B entries, indexed by PASID[19:6]) -> PASID table (64 x 64 B,
// indexed by PASID[5:0]).
constexpr unsigned kPasidDirEntryBytes = 8, kPasidEntryBytes = 64, kPasidEntriesPerTable = 64;
constexpr unsigned kPasidBits = 20;
constexpr uint32_t pasid_dir_index(uint32_t pasid) { return pasid >> 6; }
constexpr uint32_t pasid_table_index(uint32_t pasid) { return pasid & (kPasidEntriesPerTable - 1); }
constexpr uint64_t pasid_dir_entry_offset(uint32_t pasid) { return uint64_t{pasid_dir_index(pasid)} * kPasidDirEntryBytes; }
constexpr uint64_t pasid_entry_offset(uint32_t pasid) { return uint64_t{pasid_table_index(pasid)} * kPasidEntryBytes; }
// Context PDTS: the directory has 2^(PDTS+7) entries. PDTS is 3 bits, so the largest
// directory (PDTS=7, 2^14 entries) covers exactly the 20-bit PASID space.
constexpr uint32_t pasid_dir_entries(uint8_t pdts) { return uint32_t{1} << (pdts + 7); }
// False -> fault 0x46 (PASID larger than the context entry allows).
constexpr bool pasid_within_dir(uint32_t pasid, uint8_t pdts) { return pasid_dir_index(pasid) < pasid_dir_entries(pdts); }

// ---- Root entry (16 B) ----
using RootWords = std::array<uint64_t, 2>;  // lo, hi

struct RootEntry {
  bool lower_present = false;  // LP (legacy mode: P)
  uint64_t lower_ctp = 0;      // LCTP, 4 KiB aligned: devfn 0-127 (legacy mode: all devfns)
  bool upper_present = false;  // UP (scalable mode only)
  uint64_t upper_ctp = 0;      // UCTP: devfn 128-255
};

RootWords encode_root_entry(const RootEntry&);
// Reserved bits [11:1] (and pointer bits >= haw) are checked only in a present half,
// as a walker only looks at the half it uses. Ill-formed -> nullopt + *why (fault 0x3A).
std::optional<RootEntry> decode_root_entry(const RootWords&, std::string* why, unsigned haw = kNoHawCheck);

// ---- Scalable-mode context entry (32 B) ----
using SmContextWords = std::array<uint64_t, 4>;

struct SmContextEntry {
  bool present = false;
  bool fpd = false;            // fault processing disable
  bool dte = false;            // device-TLB (ATS) enable
  bool paside = false;         // requests-with-PASID allowed
  bool pre = false;            // page requests allowed
  uint8_t pdts = 0;            // PASID directory holds 2^(pdts+7) entries
  uint64_t pasid_dir_ptr = 0;  // 4 KiB aligned
  uint32_t rid_pasid = 0;      // PASID used for requests without PASID
  bool rid_priv = false;       // dw1 bit 20 (RID_PRIV): left unreserved, as QEMU does

  uint32_t pasid_dir_entries() const { return vtd::pasid_dir_entries(pdts); }
};

SmContextWords encode_sm_context(const SmContextEntry&);
// P=0 -> returned with present=false, unvalidated (the walker reports 0x41).
// Reserved bits set (dw0 [8:5], dw1 [63:21], dw2, dw3, pointer >= haw) -> nullopt (0x42).
std::optional<SmContextEntry> decode_sm_context(const SmContextWords&, std::string* why,
                                                unsigned haw = kNoHawCheck);

// ---- PASID directory entry (8 B) ----
struct PasidDirEntry {
  bool present = false;
  bool fpd = false;
  uint64_t pasid_table_ptr = 0;  // 4 KiB aligned
};

uint64_t encode_pasid_dir_entry(const PasidDirEntry&);
// P=0 -> present=false, unvalidated (0x51). Reserved [11:2] or pointer >= haw -> nullopt (0x52).
std::optional<PasidDirEntry> decode_pasid_dir_entry(uint64_t, std::string* why, unsigned haw = kNoHawCheck);

// ---- PASID table entry (64 B) ----
// PASID-granular translation type. 0 and 5-7 are reserved encodings.
enum class Pgtt : uint8_t { FirstStage = 1, SecondStage = 2, Nested = 3, PassThrough = 4 };

using PasidEntryWords = std::array<uint64_t, 8>;

struct PasidEntry {
  bool present = false;
  bool fpd = false;
  uint8_t aw = 0;                // second-stage AGAW: 1 = 39-bit/3-level, 2 = 48/4, 3 = 57/5
  Pgtt pgtt = Pgtt::SecondStage;
  bool ssade = false;            // second-stage accessed/dirty enable
  uint64_t ssptptr = 0;          // second-stage root, 4 KiB aligned
  uint16_t did = 0;
  bool pwsnp = false;            // page-walk snoop
  bool pgsnp = false;            // page snoop
  bool sre = false;              // supervisor requests enable
  uint8_t fspm = 0;              // first-stage paging mode: 0 = 4-level, 1 = 5-level
  bool wpe = false;              // write-protect enable
  bool eafe = false;             // extended accessed flag enable
  uint64_t fsptptr = 0;          // first-stage root (a GPA when nested), 4 KiB aligned

  bool uses_first_stage() const { return pgtt == Pgtt::FirstStage || pgtt == Pgtt::Nested; }
  bool uses_second_stage() const { return pgtt == Pgtt::SecondStage || pgtt == Pgtt::Nested; }
  unsigned ss_levels() const { return aw + 2u; }
  unsigned fs_levels() const { return 4u + fspm; }
};

PasidEntryWords encode_pasid_entry(const PasidEntry&);
// P=0 -> present=false, unvalidated (0x59).
// Reserved or unmodelled bits set, or a pointer >= haw -> nullopt, why says which val[] (0x5A).
// PGTT 0/5-7, AW 4-7 (or AW 0 with a second stage), FSPM 2-3 -> nullopt naming the field (0x5B).
std::optional<PasidEntry> decode_pasid_entry(const PasidEntryWords&, std::string* why,
                                             unsigned haw = kNoHawCheck);

}  // namespace iommusim::vtd
