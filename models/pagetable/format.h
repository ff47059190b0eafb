// The interface every page-table format implements (VMSAv8-64 stage 1/2, x86-64 paging,
// VT-d second stage, AMD v1). A format only knows bits: how an input address splits into
// indices, how a descriptor decodes and encodes, and which accesses its permissions
// allow. The walk engine (walker.h) does the walking.
//
// Levels are numbered from the root toward the leaf (a deeper level has a larger number
// and a smaller level_shift); walk caches and the walker rely on that.
#pragma once
#include <cstdint>
#include <string>

namespace iommusim::pagetable {

// Architecture-neutral fault classes; each vendor maps them to its own record
// (SMMU F_TRANSLATION/F_ACCESS/F_PERMISSION/F_ADDR_SIZE, VT-d reason codes, AMD events).
enum class Fault : uint8_t {
  None = 0,
  Translation,    // invalid (not present) descriptor, or input address out of range
  AccessFlag,     // AF clear and hardware AF update disabled
  Permission,
  AddressSize,    // output or table address beyond the output size
  FetchAbort,     // the descriptor read itself failed (external abort, or a nested stage-2 fault)
  Reserved,       // a present descriptor that is malformed: reserved bits set, a reserved
                  // encoding, a bad NextLevel or nonzero skipped-level index bits (VT-d
                  // 0x72/0x7A, AMD IO_PAGE_FAULT PR=1 RZ=1). VMSA reports these as Translation.
};
const char* to_string(Fault f);

struct Access {
  bool write = false;
  bool exec = false;
  bool privileged = false;
};

struct DecodedDescriptor {
  // Invalid: not present. Reserved: present but malformed (reserved bits or encodings).
  enum class Kind : uint8_t { Invalid, Table, Leaf, Reserved } kind = Kind::Invalid;
  uint64_t address = 0;        // next table base (Table) or output block/page base (Leaf)
  unsigned next_level = 0;     // Table only: level the next table belongs to (formats may skip)
  uint64_t leaf_bytes = 0;     // Leaf only
  // Leaf permissions, already in neutral form.
  bool readable = false, writable = false, user = false, exec_user = false, exec_priv = false;
  bool access_flag = true;
  // Leaf only: a global translation, shared by every address space (VMSA stage 1 nG = 0).
  // Formats that do not expose it leave it false (entries stay tagged by space).
  bool global = false;
  // Table only: limits on everything below this table (x86 R/W, U/S, XD; VT-d SS R/W;
  // AMD IR/IW are ANDed across levels). The defaults restrict nothing (VMSA).
  bool table_allows_read = true, table_allows_write = true, table_allows_user = true, table_allows_exec = true;
};

// The AND of the table_allows_* of every table descriptor a walk passed.
struct TablePermissions {
  bool read = true, write = true, user = true, exec = true;
  void restrict_by(const DecodedDescriptor& table) {
    read = read && table.table_allows_read;
    write = write && table.table_allows_write;
    user = user && table.table_allows_user;
    exec = exec && table.table_allows_exec;
  }
  void apply_to(DecodedDescriptor& leaf) const {
    leaf.readable = leaf.readable && read;
    leaf.writable = leaf.writable && write;
    leaf.user = leaf.user && user;
    leaf.exec_user = leaf.exec_user && exec;
    leaf.exec_priv = leaf.exec_priv && exec;
  }
  bool operator==(const TablePermissions& o) const {
    return read == o.read && write == o.write && user == o.user && exec == o.exec;
  }
};

// What a driver asks for when it maps.
struct LeafAttributes {
  bool read = true, write = true, exec = false, user = true;
  bool access_flag = true;
  bool global = false;   // VMSA stage 1: nG = 0 (drivers map nG = 1, as Linux does)
};

class Format {
 public:
  virtual ~Format() = default;
  virtual std::string name() const = 0;
  virtual unsigned start_level() const = 0;
  virtual unsigned last_level() const = 0;
  virtual unsigned descriptor_bytes() const { return 8; }
  // Low bit of the input address that indexes `level`; the level maps 1 << shift bytes.
  virtual unsigned level_shift(unsigned level) const = 0;
  // Number of index bits at `level` (the start level may be wider: concatenated tables).
  virtual unsigned index_bits(unsigned level) const = 0;
  virtual unsigned input_bits() const = 0;
  virtual unsigned output_bits() const = 0;
  virtual bool leaf_allowed(unsigned level) const = 0;
  // Size of the table that holds `level`, in bytes.
  uint64_t table_bytes(unsigned level) const { return uint64_t(descriptor_bytes()) << index_bits(level); }
  uint64_t index(unsigned level, uint64_t ia) const {
    return (ia >> level_shift(level)) & ((1ull << index_bits(level)) - 1);
  }
  // Input-address bits that index the levels strictly between `level` and `next_level`
  // (a table descriptor that skips levels, AMD v1). They must be zero; 0 when none skipped.
  uint64_t skipped_index_mask(unsigned level, unsigned next_level) const {
    if (next_level <= level + 1) return 0;
    const unsigned hi = level_shift(level), lo = level_shift(next_level - 1);
    return (hi >= 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1);
  }

  virtual DecodedDescriptor decode(unsigned level, uint64_t raw) const = 0;
  virtual Fault check_access(const DecodedDescriptor& leaf, const Access& a) const = 0;
  virtual uint64_t encode_table(unsigned level, uint64_t next_table) const = 0;
  virtual uint64_t encode_leaf(unsigned level, uint64_t output, const LeafAttributes& attrs) const = 0;
  virtual uint64_t encode_invalid() const { return 0; }
};

}  // namespace iommusim::pagetable
