#include "platforms/system.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <systemc>

#include "models/memory/sparse_memory.h"
#include "models/smmuv3/smmuv3.h"
#include "platforms/config.h"
#include "platforms/driver/smmuv3_driver.h"
#include "traffic/endpoint.h"

namespace iommusim::platforms {

using nlohmann::json;

namespace {

common::CacheConfig read_cache(const ConfigReader& r, uint64_t seed) {
  common::CacheConfig c;
  c.entries = unsigned(r.integer("entries", 0, 1u << 24));
  c.ways = unsigned(r.integer("ways", 0, 1u << 24));
  c.replacement = *common::parse_replacement(r.choice("replacement", {"lru", "round_robin", "random"}));
  c.lookup_cycles = unsigned(r.integer("lookup_cycles", 0, 1000));
  c.ports = unsigned(r.integer("ports", 1, 64));
  c.scan_cycles_per_set = unsigned(r.integer("scan_cycles_per_set", 0, 1000));
  c.seed = seed;
  if (auto e = common::validate(c); !e.empty()) r.fail("entries", e);
  return c;
}

struct Params {
  uint64_t seed;
  bool progress;
  memory::MemoryConfig mem;
  std::string translation;
  smmuv3::Smmuv3Config smmu;
  driver::Smmuv3DriverConfig drv;
  traffic::EndpointConfig ep;
  uint64_t guest_ram_pa, guest_ram_bytes, buffer_ipa, s2_page, s1_page;
  uint64_t unmap_interval_ns, churn_pages, domain_every;
};

uint64_t check_page(const ConfigReader& r, const std::string& key) {
  const uint64_t v = r.integer(key, 4096, 1ull << 30);
  if (v != 4096 && v != (2ull << 20) && v != (1ull << 30)) r.fail(key, "must be 4096, 2097152 or 1073741824");
  return v;
}

// Leaf size of the tables the DMA domain uses, and the churn region in those units.
uint64_t churn_unit(const Params& p) { return p.translation == "s2" ? p.s2_page : p.s1_page; }
uint64_t churn_units(const Params& p) {
  const uint64_t unit = churn_unit(p);
  return std::max<uint64_t>(1, (p.churn_pages * 4096 + unit - 1) / unit);
}

Params read_params(const json& j) {
  ConfigReader root(j, "");
  Params p;
  auto sim = root.section("sim");
  p.seed = sim.integer("seed", 0, ~0ull);
  p.progress = sim.boolean("progress");

  auto m = root.section("memory");
  p.mem.clock_mhz = m.number("clock_mhz", 1, 100000);
  p.mem.latency_cycles = unsigned(m.integer("latency_cycles", 0, 100000));
  p.mem.channels = unsigned(m.integer("channels", 1, 1024));
  p.mem.bytes_per_cycle = unsigned(m.integer("bytes_per_cycle", 1, 4096));

  auto io = root.section("iommu");
  io.choice("vendor", {"smmuv3"});
  p.translation = io.choice("translation", {"nested", "s1", "s2", "bypass"});
  auto s = io.section("smmuv3");
  p.smmu.clock_mhz = s.number("clock_mhz", 1, 100000);
  p.smmu.sid_bits = unsigned(s.integer("sid_bits", 1, 32));
  p.smmu.ssid_bits = unsigned(s.integer("ssid_bits", 0, 20));
  p.smmu.range_invalidation = s.boolean("range_invalidation");
  p.smmu.translation.walkers = unsigned(s.integer("walkers", 1, 1024));
  p.smmu.translation_cycles = unsigned(s.integer("translation_cycles", 0, 10000));
  p.smmu.cmd_batch = unsigned(s.integer("cmd_batch", 1, 64));
  p.smmu.cmd_decode_cycles = unsigned(s.integer("cmd_decode_cycles", 0, 10000));
  p.smmu.cmd_exec_cycles = unsigned(s.integer("cmd_exec_cycles", 0, 10000));
  p.smmu.sync_cycles = unsigned(s.integer("sync_cycles", 0, 10000));
  p.smmu.atc_inv_cycles = unsigned(s.integer("atc_inv_cycles", 0, 1000000));
  p.smmu.config_cache = read_cache(s.section("config_cache"), p.seed * 11 + 1);
  p.smmu.translation.iotlb = read_cache(s.section("iotlb"), p.seed * 11 + 2);
  p.smmu.translation.s1_walk_cache = read_cache(s.section("s1_walk_cache"), p.seed * 11 + 3);
  p.smmu.translation.s2_walk_cache = read_cache(s.section("s2_walk_cache"), p.seed * 11 + 4);
  p.smmu.translation.ipa_cache = read_cache(s.section("ipa_cache"), p.seed * 11 + 5);

  auto d = root.section("driver");
  p.drv.timing.cpu_mhz = d.number("cpu_mhz", 1, 100000);
  p.drv.timing.descriptor_write_cycles = unsigned(d.integer("descriptor_write_cycles", 0, 1000000));
  p.drv.timing.command_write_cycles = unsigned(d.integer("command_write_cycles", 0, 1000000));
  p.drv.timing.op_overhead_cycles = unsigned(d.integer("op_overhead_cycles", 0, 10000000));
  p.drv.timing.mmio_write_ns = d.number("mmio_write_ns", 0, 1e6);
  p.drv.timing.mmio_read_ns = d.number("mmio_read_ns", 0, 1e6);
  p.drv.timing.poll_interval_ns = d.number("poll_interval_ns", 1, 1e6);
  p.drv.timing.poll_read_cycles = unsigned(d.integer("poll_read_cycles", 0, 100000));
  p.drv.timing.sync_timeout_us = d.number("sync_timeout_us", 0.001, 1e7);
  p.drv.sync_mode = d.choice("sync_mode", {"msi_poll", "sev_poll"}) == "msi_poll" ? driver::SmmuSyncMode::MsiPoll
                                                                                  : driver::SmmuSyncMode::SevPoll;
  p.drv.cmdq_log2 = unsigned(d.integer("cmdq_log2", 2, 19));
  p.drv.evtq_log2 = unsigned(d.integer("evtq_log2", 1, 19));
  p.drv.two_level_stream_table = d.boolean("two_level_stream_table");
  p.drv.stream_table_log2 = unsigned(d.integer("stream_table_log2", 1, 24));
  if (p.drv.stream_table_log2 > p.smmu.sid_bits) d.fail("stream_table_log2", "exceeds iommu.smmuv3.sid_bits");

  auto pl = root.section("platform");
  p.guest_ram_pa = pl.integer("guest_ram_pa", 0, 1ull << 47);
  p.guest_ram_bytes = pl.integer("guest_ram_bytes", 1u << 20, 1ull << 40);
  p.buffer_ipa = pl.integer("buffer_ipa", 0, 1ull << 47);
  p.s2_page = check_page(pl, "stage2_page_bytes");
  p.s1_page = check_page(pl, "stage1_page_bytes");
  if (p.guest_ram_pa + p.guest_ram_bytes > p.mem.size_bytes)
    pl.fail("guest_ram_pa", "guest RAM ends beyond simulated memory (" + std::to_string(p.mem.size_bytes >> 30) + " GiB)");
  if (p.guest_ram_pa % p.s2_page || p.guest_ram_bytes % p.s2_page) pl.fail("guest_ram_pa", "guest RAM must be aligned to stage2_page_bytes");
  if (p.guest_ram_pa < (p.drv.memory.table_pool_base + p.drv.memory.table_pool_bytes) && p.guest_ram_pa + p.guest_ram_bytes > p.drv.memory.table_pool_base)
    pl.fail("guest_ram_pa", "overlaps the host table pool at 0x100000000 (256 MiB)");

  auto t = root.section("traffic");
  p.ep.requester_id = uint32_t(t.integer("requester_id", 0, (1ull << p.drv.stream_table_log2) - 1));
  const int64_t pasid = t.signed_integer("pasid", -1, (1 << 20) - 1);
  p.ep.pasid_valid = pasid >= 0;
  p.ep.pasid = pasid >= 0 ? uint32_t(pasid) : 0;
  if (pasid >= (int64_t(1) << p.drv.cd_table_log2)) t.fail("pasid", "beyond the CD table (16 SubstreamIDs)");
  p.ep.outstanding = unsigned(t.integer("outstanding", 1, 4096));
  p.ep.pattern = *traffic::parse_pattern(t.choice("pattern", {"random", "sequential", "strided"}));
  p.ep.window_base = t.integer("window_iova", 0, 1ull << 47);
  p.ep.window_bytes = t.integer("window_bytes", 4096, 1ull << 40);
  p.ep.stride_bytes = t.integer("stride_bytes", 1, 1ull << 40);
  p.ep.transfer_bytes = unsigned(t.integer("transfer_bytes", 1, 4096));
  p.ep.read_fraction = t.number("read_fraction", 0, 1);
  p.ep.issue_gap_ns = t.number("issue_gap_ns", 0, 1e9);
  p.ep.total_transactions = t.integer("transactions", 1, 1ull << 40);
  p.ep.clock_mhz = t.number("clock_mhz", 1, 100000);
  p.ep.seed = p.seed;
  if (auto e = traffic::validate(p.ep); !e.empty()) t.fail("window_bytes", e);
  if (p.ep.window_base % p.s1_page || p.ep.window_bytes % p.s1_page) t.fail("window_iova", "window must be aligned to platform.stage1_page_bytes");

  auto w = root.section("workload");
  p.unmap_interval_ns = w.integer("unmap_interval_ns", 0, 1ull << 40);
  p.churn_pages = w.integer("churn_pages", 1, 1u << 20);
  p.domain_every = w.integer("domain_invalidate_every", 0, 1u << 30);

  if (p.translation == "s2") {
    // The device addresses IPAs directly; the window and churn region are guest RAM.
    if (p.ep.window_base % p.s2_page || p.ep.window_bytes % p.s2_page)
      t.fail("window_iova", "with translation s2 the window must be aligned to platform.stage2_page_bytes");
    if (p.ep.window_base + p.ep.window_bytes + churn_units(p) * churn_unit(p) > p.guest_ram_bytes)
      t.fail("window_iova", "with translation s2 the window and churn region must lie inside guest RAM");
  }
  // Everything the traffic and churn touch must fit in guest RAM (buffers + guest tables).
  const uint64_t need = p.ep.window_bytes + churn_units(p) * churn_unit(p);
  p.drv.memory.guest_pool_ipa = (p.buffer_ipa + need + p.s2_page + (p.s2_page - 1)) & ~(p.s2_page - 1);
  p.drv.memory.guest_pool_bytes = 16ull << 20;
  if (p.drv.memory.guest_pool_ipa + p.drv.memory.guest_pool_bytes > p.guest_ram_bytes)
    pl.fail("guest_ram_bytes", "too small for the DMA window, the churn pages and 16 MiB of guest tables");
  return p;
}

}  // namespace

// The workload: sets the platform up through the driver, starts the traffic, and keeps
// unmapping/invalidating until the traffic is done.
struct System::Impl : sc_core::sc_module {
  SC_HAS_PROCESS(Impl);
  Params p;
  json config;
  memory::SparseMemory memory;
  smmuv3::Smmuv3 smmu;
  driver::Smmuv3Driver drv;
  traffic::Endpoint endpoint;
  sc_core::sc_event go;
  common::StatRegistry reg;
  std::string failure;
  driver::DomainId dma_domain = 0;
  common::Counter unmaps, domain_flushes;
  sc_core::sc_time traffic_start, traffic_end;
  bool finished = false;

  Impl(sc_core::sc_module_name name, const json& j, const Params& params)
      : sc_module(name), p(params), config(j), memory("memory", p.mem), smmu("smmu", p.smmu),
        drv("driver", p.drv, smmu, memory), endpoint("endpoint", p.ep) {
    endpoint.socket.bind(smmu.dma);
    smmu.mem.bind(memory.socket);
    drv.mmio.bind(smmu.mmio);
    endpoint.start(go);
    SC_THREAD(workload);
    SC_THREAD(progress);
    memory.register_stats(reg, "memory");
    smmu.register_stats(reg, "smmu");
    drv.register_stats(reg, "driver");
    endpoint.register_stats(reg, "endpoint");
    reg.add("workload.unmaps", unmaps, "count", "strict unmap operations (PTE clear + range invalidation + sync)");
    reg.add("workload.domain_flushes", domain_flushes, "count", "whole-domain invalidations");
  }

  // Where the DMA domain maps an IOVA of the window or churn region: a PA (s1), an IPA
  // (nested) or, for s2, the PA that guest RAM backs the IPA with.
  uint64_t dma_target(uint64_t iova) const {
    if (p.translation == "s2") return p.guest_ram_pa + iova;
    const uint64_t off = p.buffer_ipa + (iova - p.ep.window_base);
    return p.translation == "s1" ? p.guest_ram_pa + off : off;
  }

  bool check(const driver::Status& s, const char* what) {
    if (s.ok) return true;
    failure = std::string(what) + ": " + s.error;
    sc_core::sc_stop();
    return false;
  }

  // Maps the DMA window (+ churn pages) to buffers and returns false on failure.
  bool setup() {
    using driver::DomainKind;
    if (!check(drv.init(), "driver init")) return false;
    std::string why;
    const std::optional<uint32_t> pasid = p.ep.pasid_valid ? std::optional<uint32_t>(p.ep.pasid) : std::nullopt;
    const uint64_t span = p.ep.window_bytes + churn_units(p) * churn_unit(p);
    if (p.translation == "bypass") {
      drv.global_bypass();
      return true;
    }
    if (p.translation == "s2" || p.translation == "nested") {
      auto s2 = drv.create_domain(DomainKind::Stage2, std::nullopt, &why);
      if (!s2) return check(driver::Status::fail(why), "create stage-2 domain");
      // The VMM maps all of guest RAM: IPA [0, size) -> PA guest_ram_pa.
      if (!check(drv.map(*s2, 0, p.guest_ram_pa, p.guest_ram_bytes, {}, p.s2_page), "map guest RAM")) return false;
      if (p.translation == "s2") {
        // Device IOVA = IPA: map the window onto the buffers directly through stage 2.
        dma_domain = *s2;
        return check(drv.attach(p.ep.requester_id, std::nullopt, *s2), "attach");
      }
      auto s1 = drv.create_domain(DomainKind::Nested, *s2, &why);
      if (!s1) return check(driver::Status::fail(why), "create nested domain");
      if (!check(drv.map(*s1, p.ep.window_base, dma_target(p.ep.window_base), span, {}, p.s1_page), "map DMA window")) return false;
      dma_domain = *s1;
      return check(drv.attach(p.ep.requester_id, pasid, *s1), "attach");
    }
    auto s1 = drv.create_domain(DomainKind::Stage1, std::nullopt, &why);
    if (!s1) return check(driver::Status::fail(why), "create stage-1 domain");
    if (!check(drv.map(*s1, p.ep.window_base, dma_target(p.ep.window_base), span, {}, p.s1_page), "map DMA window"))
      return false;
    dma_domain = *s1;
    return check(drv.attach(p.ep.requester_id, pasid, *s1), "attach");
  }

  void workload() {
    if (!setup()) return;
    traffic_start = sc_core::sc_time_stamp();
    go.notify(sc_core::SC_ZERO_TIME);
    // The churn region follows the DMA window; it is unmapped and remapped one leaf at a
    // time (a DMA buffer's life cycle), so the unit is the leaf size of the domain's tables.
    const uint64_t unit = churn_unit(p);
    const uint64_t churn_iova = p.ep.window_base + p.ep.window_bytes;
    const uint64_t units = churn_units(p);
    uint64_t op = 0, events_drained_at = 0;
    while (!endpoint.done()) {
      if (p.unmap_interval_ns == 0 || dma_domain == 0) { sc_core::wait(endpoint.done_event()); break; }
      sc_core::wait(sc_core::sc_time(double(p.unmap_interval_ns), sc_core::SC_NS), endpoint.done_event());
      if (endpoint.done()) break;
      ++op;
      // Stands in for the EVTQ interrupt: Linux's event thread runs only when records arrive.
      if (smmu.events_written() != events_drained_at) { events_drained_at = smmu.events_written(); drv.drain_events(); }
      if (p.domain_every && op % p.domain_every == 0) {
        if (!check(drv.invalidate_domain(dma_domain), "invalidate_domain")) return;
        domain_flushes.inc();
        continue;
      }
      const uint64_t iova = churn_iova + (op % units) * unit;
      if (!check(drv.unmap(dma_domain, iova, unit), "unmap")) return;
      unmaps.inc();
      if (!check(drv.map(dma_domain, iova, dma_target(iova), unit, {}, unit), "remap")) return;
    }
    traffic_end = sc_core::sc_time_stamp();
    drv.drain_events();
    finished = true;
    sc_core::sc_stop();
  }

  void progress() {
    if (!p.progress || !isatty(STDERR_FILENO)) return;
    auto last = std::chrono::steady_clock::now();
    for (;;) {
      sc_core::wait(sc_core::sc_time(20, sc_core::SC_US));
      auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(500)) continue;
      last = now;
      std::fprintf(stderr, "\r  %llu / %llu DMAs (%.0f%%) at %.1f us simulated",
                   (unsigned long long)endpoint.completed(), (unsigned long long)p.ep.total_transactions,
                   100.0 * double(endpoint.completed()) / double(p.ep.total_transactions),
                   sc_core::sc_time_stamp().to_seconds() * 1e6);
      std::fflush(stderr);
    }
  }
};

System::System(const json& cfg) {
  Params p = read_params(cfg);
  if (auto e = smmuv3::validate(p.smmu); !e.empty()) throw ConfigError("iommu.smmuv3." + e);
  if (auto e = driver::validate(p.drv); !e.empty()) throw ConfigError(e);
  impl_ = std::make_unique<Impl>("system", cfg, p);
}

System::~System() = default;

common::StatRegistry& System::stats() { return impl_->reg; }
nlohmann::json System::invalidation_records() const { return impl_->drv.invalidations().to_json(); }

namespace {
std::string fmt(double v, int prec = 1) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
}  // namespace

RunResult System::run() {
  Impl& s = *impl_;
  sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);   // "stopped by user"
  const auto host_start = std::chrono::steady_clock::now();
  sc_core::sc_start();
  const double host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - host_start).count();
  if (s.p.progress && isatty(STDERR_FILENO)) std::fprintf(stderr, "\r%80s\r", "");

  RunResult r;
  r.ok = s.failure.empty();
  r.error = s.failure;
  const double sim_ns = (s.traffic_end - s.traffic_start).to_seconds() * 1e9;
  const auto& smmu = s.smmu;
  const uint64_t translations = smmu.iotlb_stats().hits.value() + smmu.iotlb_stats().misses.value();
  s.reg.set_value("run.simulated_traffic_time", sim_ns, "ns", "simulated time from traffic start to its end");
  s.reg.set_value("run.dma_throughput", sim_ns > 0 ? double(s.endpoint.completed()) / sim_ns * 1e3 : 0, "M DMA/s",
                  "completed DMAs per simulated microsecond");
  struct C { const char* name; const common::CacheStats* st; };
  const C caches[] = {{"config_cache", &smmu.config_cache_stats()}, {"iotlb", &smmu.iotlb_stats()},
                      {"s1_walk_cache", &smmu.s1_walk_cache_stats()}, {"s2_walk_cache", &smmu.s2_walk_cache_stats()},
                      {"ipa_cache", &smmu.ipa_cache_stats()}};
  for (auto& c : caches)
    s.reg.set_value(std::string("smmu.") + c.name + ".hit_rate", c.st->hit_rate(), "ratio", std::string(c.name) + " hits / lookups");
  r.stats = s.reg.to_json();

  std::ostringstream o;
  o << "iommusim run: smmuv3, translation " << s.p.translation << ", seed " << s.p.seed << "\n";
  if (!r.ok) o << "  RUN FAILED: " << r.error << " (statistics below cover the run up to that point)\n";
  o << "  DMAs completed        " << s.endpoint.completed() << " (" << s.endpoint.faulted() << " faulted, "
    << s.endpoint.errors() << " errors) in " << fmt(sim_ns / 1000.0) << " us simulated, " << fmt(host_s, 2)
    << " s host\n";
  o << "  translations          " << translations << " (IOTLB lookups)\n";
  o << "  cache hit rates       ";
  for (auto& c : caches) {
    const uint64_t n = c.st->hits.value() + c.st->misses.value();
    o << c.name << " " << (n ? fmt(100.0 * c.st->hit_rate()) + "%" : std::string("-")) << "  ";
  }
  o << "\n";
  const auto& wr = smmu.walk_reads();
  o << "  page-table reads/walk mean " << fmt(wr.mean(), 2) << ", p50 " << wr.percentile(0.5) << ", p99 "
    << wr.percentile(0.99) << ", max " << wr.max() << " (" << wr.count() << " walks; config reads "
    << smmu.config_reads() << " counted apart)\n";
  const auto& wl = smmu.walk_latency_ps();
  o << "  walk latency (ns)     mean " << fmt(wl.mean() / 1000) << ", p50 " << fmt(wl.percentile(0.5) / 1000.0)
    << ", p99 " << fmt(wl.percentile(0.99) / 1000.0) << ", max " << fmt(wl.max() / 1000.0) << "\n";
  const auto& inv = s.drv.invalidations();
  const auto& it = inv.total();
  o << "  invalidations         " << it.count() << " (" << s.unmaps.value() << " strict unmaps, "
    << s.domain_flushes.value() << " domain flushes)\n";
  if (it.count()) {
    o << "  invalidation latency (ns) p50 " << fmt(it.percentile(0.5) / 1000.0) << ", p99 "
      << fmt(it.percentile(0.99) / 1000.0) << ", max " << fmt(it.max() / 1000.0) << "\n";
    double sw = 0, q = 0, f = 0, e = 0, sy = 0;
    for (auto& rec : inv.records()) { sw += rec.software_ps; q += rec.queueing_ps; f += rec.fetch_ps; e += rec.execution_ps; sy += rec.sync_ps; }
    const double n = double(inv.records().size()) * 1000.0;
    o << "    mean breakdown (ns) software " << fmt(sw / n) << ", queueing " << fmt(q / n) << ", fetch " << fmt(f / n)
      << ", execution " << fmt(e / n) << ", sync " << fmt(sy / n) << "\n";
  }
  o << "  events recorded       " << smmu.events_written() << "\n";
  r.summary = o.str();
  return r;
}

void write_outputs(const std::string& dir, const json& config, const RunResult& r, const json& invalidations) {
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(std::filesystem::path(dir) / name);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + (std::filesystem::path(dir) / name).string());
  };
  write("config.resolved.json", config.dump(2) + "\n");
  write("stats.json", json{{"ok", r.ok}, {"error", r.error}, {"stats", r.stats}}.dump(2) + "\n");
  write("invalidations.json", invalidations.dump(1) + "\n");
  write("summary.txt", r.summary);
}

}  // namespace iommusim::platforms
