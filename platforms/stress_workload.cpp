#include "platforms/stress_workload.h"

namespace iommusim::platforms {

using driver::DomainKind;
using driver::Status;

StressWorkload::StressWorkload(const StressConfig& c, driver::IommuDriver& drv)
    : c_(c), drv_(drv), rng_(c.seed * 7919 + 17) {
  const uint64_t chunk = c.mixed_leaves ? (2ull << 20) : c.leaf_bytes;
  for (uint64_t off = 0, k = 0; off < c.window_bytes; off += chunk, ++k) {
    // Mixed: even chunks are one 2 MB leaf, odd ones 512 leaves of 4 KB.
    const uint64_t leaf = c.mixed_leaves && (k & 1) ? 4096 : chunk;
    chunks_.push_back({leaves_.size(), size_t(chunk / leaf)});
    for (uint64_t o = 0; o < chunk; o += leaf) leaves_.push_back({c.window_base + off + o, leaf, 0, false});
  }
  if (c.translation == "nested") s2_moved_.assign(2 * c.stride / c.s2_page, false);
}

uint64_t StressWorkload::target(uint64_t iova, unsigned region) const {
  const uint64_t off = iova - c_.window_base;
  // A guest's driver maps GPAs (a virtio guest's too, under s1).
  if (c_.translation == "nested" || c_.guest_stage1) return c_.buffer_ipa + off + region * c_.stride;
  if (c_.translation == "s1") return c_.guest_ram_pa + c_.buffer_ipa + off + region * c_.stride;
  // s2: IOVA is the IPA; regions past 0 lie beyond guest RAM.
  if (region == 0) return c_.guest_ram_pa + iova;
  return c_.guest_ram_pa + c_.guest_ram_bytes + (region - 1) * c_.stride + off;
}

Status StressWorkload::map_window(driver::DomainId d, unsigned region) {
  for (const Leaf& l : leaves_)
    if (Status s = drv_.map(d, l.iova, target(l.iova, region), l.bytes, prot(l), l.bytes); !s.ok) return s;
  return {};
}

Status StressWorkload::setup(uint32_t rid, std::optional<uint32_t> pasid) {
  rid_ = rid;
  pasid_ = pasid;
  std::string why;
  auto create = [&](DomainKind k, std::optional<driver::DomainId> parent, driver::DomainId& out) {
    auto d = drv_.create_domain(k, parent, &why);
    if (!d) return Status::fail(why);
    out = *d;
    return Status{};
  };
  const uint64_t g = c_.guest_ram_bytes;
  if (c_.guest_stage1) {   // a guest's domains (trapped nested, or virtio): B on region 1, in guest RAM
    if (Status s = create(DomainKind::Stage1, std::nullopt, a_); !s.ok) return s;
    if (Status s = map_window(a_, 0); !s.ok) return s;
    if (Status s = create(DomainKind::Stage1, std::nullopt, b_); !s.ok) return s;
    if (Status s = map_window(b_, 1); !s.ok) return s;
  } else if (c_.translation == "s1") {
    if (Status s = create(DomainKind::Stage1, std::nullopt, a_); !s.ok) return s;
    if (Status s = map_window(a_, 0); !s.ok) return s;
    if (Status s = create(DomainKind::Stage1, std::nullopt, b_); !s.ok) return s;
    for (Leaf& l : leaves_)
      if (Status s = drv_.map(b_, l.iova, target(l.iova, 2), l.bytes, prot(l), l.bytes); !s.ok) return s;
  } else if (c_.translation == "s2") {
    // Guest RAM around the window at its own page size; the window with the stress leaves.
    if (Status s = create(DomainKind::Stage2, std::nullopt, a_); !s.ok) return s;
    const uint64_t lo = c_.window_base, hi = c_.window_base + c_.window_bytes;
    if (lo)
      if (Status s = drv_.map(a_, 0, c_.guest_ram_pa, lo, {}, c_.s2_page); !s.ok)
        return Status::fail("map guest RAM below the window: " + s.error);
    if (hi < g)
      if (Status s = drv_.map(a_, hi, c_.guest_ram_pa + hi, g - hi, {}, c_.s2_page); !s.ok)
        return Status::fail("map guest RAM above the window: " + s.error);
    if (Status s = map_window(a_, 0); !s.ok) return s;
    if (Status s = create(DomainKind::Stage2, std::nullopt, b_); !s.ok) return s;
    for (Leaf& l : leaves_)
      if (Status s = drv_.map(b_, l.iova, target(l.iova, 2), l.bytes, prot(l), l.bytes); !s.ok) return s;
    pasid_.reset();
  } else {
    // Two VMs' worth of stage 2: B's guest memory lies after A's.
    if (Status s = create(DomainKind::Stage2, std::nullopt, s2_a_); !s.ok) return s;
    if (Status s = drv_.map(s2_a_, 0, c_.guest_ram_pa, g, {}, c_.s2_page); !s.ok) return s;
    if (Status s = create(DomainKind::Nested, s2_a_, a_); !s.ok) return s;
    if (Status s = map_window(a_, 0); !s.ok) return s;
    if (Status s = create(DomainKind::Stage2, std::nullopt, s2_b_); !s.ok) return s;
    if (Status s = drv_.map(s2_b_, 0, c_.guest_ram_pa + g, g, {}, c_.s2_page); !s.ok) return s;
    if (Status s = create(DomainKind::Nested, s2_b_, b_); !s.ok) return s;
    if (Status s = map_window(b_, 0); !s.ok) return s;
  }
  return drv_.attach(rid_, pasid_, a_);
}

StressWorkload::Leaf& StressWorkload::pick_leaf() {
  const Chunk& c = chunks_[random(chunks_.size())];
  return leaves_[c.first + random(c.count)];
}

Status StressWorkload::unmap_and_map(std::string& what) {
  what = "unmap and map";
  Leaf& l = pick_leaf();
  unmaps_.inc();
  if (Status s = drv_.unmap(a_, l.iova, l.bytes); !s.ok) return s;
  l.region ^= 1;
  return drv_.map(a_, l.iova, target(l.iova, l.region), l.bytes, prot(l), l.bytes);
}

Status StressWorkload::step(std::string& what) {
  if (c_.unmap_map_only) return unmap_and_map(what);
  const uint64_t dice = random(100);
  if (dice < 30 || (dice >= 90 && c_.translation != "nested")) {
    what = "remap";
    Leaf& l = pick_leaf();
    l.region ^= 1;
    remaps_.inc();
    return drv_.remap(a_, l.iova, target(l.iova, l.region), l.bytes, prot(l));
  }
  if (dice < 50) {
    what = "protect";
    Leaf& l = pick_leaf();
    l.read_only = !l.read_only;
    protects_.inc();
    return drv_.protect(a_, l.iova, l.bytes, prot(l));
  }
  if (dice < 70) return unmap_and_map(what);
  if (dice < 80) {
    what = "reattach";
    on_b_ = !on_b_;
    reattaches_.inc();
    return drv_.attach(rid_, pasid_, on_b_ ? b_ : a_);
  }
  if (dice < 90) {
    what = "domain flush";
    flushes_.inc();
    return drv_.invalidate_domain(a_);
  }
  // Nested: the VMM moves a guest page behind the window (A's IPA regions 0 and 1).
  what = "stage-2 remap";
  const size_t i = size_t(random(s2_moved_.size()));
  const uint64_t ipa = c_.buffer_ipa + i * c_.s2_page;
  s2_moved_[i] = !s2_moved_[i];
  const uint64_t pa = s2_moved_[i] ? c_.guest_ram_pa + 2 * c_.guest_ram_bytes + (ipa - c_.buffer_ipa) : c_.guest_ram_pa + ipa;
  s2_remaps_.inc();
  if (c_.guest_stage1) return c_.move_guest_page(ipa, pa, c_.s2_page);
  return drv_.remap(s2_a_, ipa, pa, c_.s2_page, {});
}

void StressWorkload::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".stress_remaps", remaps_, "count", "stress: live leaves moved in place to another target");
  reg.add(p + ".stress_protects", protects_, "count", "stress: live leaves toggled between read-write and read-only");
  reg.add(p + ".stress_unmaps", unmaps_, "count", "stress: leaves strictly unmapped and mapped anew elsewhere");
  reg.add(p + ".stress_reattaches", reattaches_, "count", "stress: device moved between domains A and B");
  reg.add(p + ".stress_flushes", flushes_, "count", "stress: whole-domain invalidations of A");
  reg.add(p + ".stress_s2_remaps", s2_remaps_, "count", "stress (nested): guest pages moved to another PA by stage 2");
}

}  // namespace iommusim::platforms
