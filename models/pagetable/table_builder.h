// Builds and edits page tables of any Format in simulated memory, as a driver does.
// Used by the driver models (to map/unmap) and by tests (to lay out known tables).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "models/pagetable/format.h"

namespace iommusim::pagetable {

// Where tables live. For a guest stage-1 table the addresses are IPAs and the
// implementation translates them to PAs (through the stage-2 the VMM set up).
class TableMemory {
 public:
  virtual ~TableMemory() = default;
  virtual uint64_t read_descriptor(uint64_t addr) = 0;
  virtual void write_descriptor(uint64_t addr, uint64_t value) = 0;
  // Allocates zeroed, naturally aligned table memory; returns its address in the table's space.
  virtual uint64_t allocate_table(uint64_t bytes) = 0;
};

struct EditResult {
  bool ok = true;
  std::string error;              // names what was wrong (misaligned, overlaps a block, ...)
  unsigned descriptors_written = 0;
  unsigned tables_allocated = 0;
  bool pool_exhausted = false;    // a table could not be allocated
  uint64_t leaf_bytes = 0;        // unmap: the smallest leaf cleared (0: none); map: the leaf size used
};

class TableBuilder {
 public:
  // Allocates a fresh root table.
  TableBuilder(const Format& fmt, TableMemory& mem);
  uint64_t root() const { return root_; }
  const Format& format() const { return fmt_; }

  // Maps [ia, ia+bytes) to [out, out+bytes) using leaves of leaf_bytes (must be a size
  // the format allows). A live leaf or table where a new leaf would go is an error, as
  // Linux's iommu_map refuses with -EEXIST: changing a live mapping is change()'s job.
  EditResult map(uint64_t ia, uint64_t out, uint64_t bytes, uint64_t leaf_bytes, const LeafAttributes& attrs);
  // Rewrites the live leaves covering [ia, ia+bytes) in place, each keeping its size: the
  // output becomes out + (leaf address - ia) when `out` is given, the attributes `attrs`.
  // Every leaf must be present and lie inside the range.
  EditResult change(uint64_t ia, uint64_t bytes, std::optional<uint64_t> out, const LeafAttributes& attrs);
  // Clears the leaves covering [ia, ia+bytes). Tables are kept (Linux frees them lazily).
  EditResult unmap(uint64_t ia, uint64_t bytes);

 private:
  unsigned level_for(uint64_t leaf_bytes) const;
  // The descriptor address and decoding of the leaf mapping `va`; false when none.
  bool find_leaf(uint64_t va, uint64_t& daddr, unsigned& level, DecodedDescriptor& d);
  const Format& fmt_;
  TableMemory& mem_;
  uint64_t root_;
};

}  // namespace iommusim::pagetable
