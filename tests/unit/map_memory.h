// Page tables in a plain map for the format tests: a TableMemory that needs no SystemC,
// and a walk over it that reads descriptors straight from the map.
#pragma once
#include <cstdint>
#include <map>

#include "models/pagetable/table_builder.h"
#include "models/pagetable/walker.h"

namespace iommusim::pagetable {

struct MapMemory : TableMemory {
  std::map<uint64_t, uint64_t> words;
  uint64_t next = 0x100000;
  uint64_t read_descriptor(uint64_t a) override { auto it = words.find(a); return it == words.end() ? 0 : it->second; }
  void write_descriptor(uint64_t a, uint64_t v) override { words[a] = v; }
  uint64_t allocate_table(uint64_t bytes) override {   // tables are aligned to their size
    const uint64_t align = bytes < 4096 ? 4096 : bytes;
    const uint64_t a = (next + align - 1) & ~(align - 1);
    next = a + align;
    return a;
  }
};

inline WalkResult walk_map(const Format& f, MapMemory& m, uint64_t root, uint64_t va, Access a = {}) {
  return walk(f, {f.start_level(), root}, va, a,
              [&](uint64_t addr, unsigned) { return FetchResult{true, m.read_descriptor(addr)}; });
}

}  // namespace iommusim::pagetable
