// sc_spawn: one workload thread per lane.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "platforms/system.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <systemc>

#include "models/common/timeline.h"
#include "models/memory/sparse_memory.h"
#include "platforms/config.h"
#include "platforms/config_keys.h"
#include "models/pcie/root_complex.h"
#include "platforms/dma_api_workload.h"
#include "platforms/iommu_lane.h"
#include "platforms/nic_workload.h"
#include "platforms/pcie_keys.h"
#include "platforms/vmm_keys.h"
#include "platforms/progress.h"
#include "platforms/stat_names.h"
#include "platforms/storage_workload.h"
#include "platforms/stress_workload.h"
#include "platforms/trace_workload.h"
#include "traffic/endpoint.h"

namespace iommusim::platforms {

using nlohmann::json;

namespace {

// The run's own settings; the vendors' are read by their lanes.
struct Params {
  uint64_t seed = 0;
  bool progress = false;
  double max_sim_time_us = 0;   // 0: no limit
  uint64_t warmup = 0;          // DMAs per lane before its statistics count (0: none)
  memory::MemoryConfig mem;
  std::string translation;
  std::vector<std::string> vendors;
  // Each vendor's lanes, one per invalidation path (vmm.paths).
  VmmSettings vmm;
  GuestSettings guest;
  std::vector<std::string> paths{kNativePath};
  // Only trapped (or accelerated) lanes run: a guest's driver over its vIOMMU programs every DMA domain.
  bool trapped_only() const { return std::all_of(paths.begin(), paths.end(), nested_guest_path); }
  // A lane whose guest nests over the host's stage 2 (trapped, accelerated) runs.
  bool has_nested_guest() const { return std::any_of(paths.begin(), paths.end(), nested_guest_path); }
  bool has_path(const char* path) const { return std::find(paths.begin(), paths.end(), path) != paths.end(); }
  // Every lane's driver is a guest's (trapped, accelerated or virtio): it builds stage 1 only.
  bool guests_only() const {
    return std::all_of(paths.begin(), paths.end(), [](const std::string& x) { return nested_guest_path(x) || x == kVirtioPath; });
  }
  driver::DriverTiming timing;
  driver::DriverMemory pools;
  traffic::EndpointConfig ep;                  // traffic.*: the lane's endpoint, or what the listed ones start from
  std::vector<traffic::EndpointConfig> listed;  // traffic.endpoints
  std::vector<unsigned> listed_iommu;           // traffic.endpoints[i].iommu
  unsigned iommus = 1;                          // platform.iommus
  std::vector<EndpointSettings> eps;            // the lane's endpoints: `ep`, or the listed ones
  PcieSettings pcie;
  uint64_t guest_ram_pa = 0, guest_ram_bytes = 0, buffer_ipa = 0, s2_page = 0, s1_page = 0;
  uint64_t unmap_interval_ns = 0, churn_pages = 0, domain_every = 0, extra_pasids = 0;
  bool oracle = false;
  std::string mode;   // workload.mode
  bool stress = false, mixed_leaves = false, dma_api = false;
  bool jobs = false;   // nic, storage or trace: the workload hands the endpoints their DMAs
  DmaApiSection dma;
  NicConfig nic;
  StorageConfig storage;
  TraceConfig trace;
  std::vector<TraceEvent> trace_events;   // trace.file, read and checked
  uint64_t stride = 0;   // stress: distance between the target regions a window leaf moves among
  uint64_t vm_ram_stride = 0;   // host PA from one VM's guest RAM to the next's (vmm.vms)
};

constexpr unsigned kBarrierReads = 48;
constexpr unsigned kMaxIommus = 8;   // platform.iommus

// The run's own sections. Params's zeros are placeholders (StructDefaults::Own): every value
// comes from these declarations. The model structs it holds are checked against them where
// their member defaults serve tests that build models directly.
using P = Params;

Section<P> sim_keys() {
  return Section<P>("Simulation control.", StructDefaults::Own)
      .integer("seed", &P::seed, 1, 0, ~0ull, "", "seed of the traffic and of random cache replacement")
      .boolean("progress", &P::progress, true, "progress on stderr when it is a terminal")
      .boolean("oracle", &P::oracle, true, "check every DMA against the driver's mappings (exit 3 on a violation)")
      .number("max_sim_time_us", &P::max_sim_time_us, 0, 0, 1e12, "us",
              "stop a run whose simulated time reaches this (exit 1); 0: no limit")
      .integer("warmup_transactions", &P::warmup, 0, 0, 1ull << 40, "DMAs",
               "DMAs per lane before its statistics count (the oracle's counts never reset); 0: none");
}

Section<memory::MemoryConfig> memory_keys() {
  using M = memory::MemoryConfig;
  return Section<M>("Each lane's memory (models/memory/sparse_memory.h): tables, queues and DMA buffers.")
      .number("clock_mhz", &M::clock_mhz, 1000, 1, 100000, "MHz", "memory clock")
      // 10000 cycles is 10 us at 1 GHz, far beyond any DRAM (and checked against
      // driver.sync_timeout_us).
      .integer("latency_cycles", &M::latency_cycles, 80, 0, 10000, "cycles", "first-word latency of an access")
      .integer("channels", &M::channels, 4, 1, 1024, "channels", "accesses served at once")
      .integer("bytes_per_cycle", &M::bytes_per_cycle, 32, 1, 4096, "bytes", "transfer rate of one channel")
      .boolean("store_dma_payload", &M::store_dma_payload, false,
               "keep the bytes devices write (off: only frames that hold tables or queues keep DMA data)");
}

// iommu.vendor: one vendor, or several separated by commas: each gets identical traffic.
void read_vendors(const ConfigReader& io, P& p) {
  const std::string vendors = io.string("vendor");
  const std::vector<std::string> known = known_vendors();
  p.vendors.clear();
  for (size_t pos = 0; pos <= vendors.size();) {
    const size_t comma = std::min(vendors.find(',', pos), vendors.size());
    const std::string v = vendors.substr(pos, comma - pos);
    if (std::find(known.begin(), known.end(), v) == known.end()) {
      std::string list;
      for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
      io.fail("vendor", "unknown vendor '" + v + "' (known: " + list + "; several may be given, comma-separated)");
    }
    if (std::find(p.vendors.begin(), p.vendors.end(), v) != p.vendors.end()) io.fail("vendor", "'" + v + "' given twice");
    p.vendors.push_back(v);
    pos = comma + 1;
  }
}

json write_vendors(const P& p) {
  std::string s;
  for (auto& v : p.vendors) s += (s.empty() ? "" : ",") + v;
  return s;
}

// Each vendor's own section (iommu.<vendor>) joins these in config_schema().
Section<P> iommu_keys() {
  std::string known;
  for (const std::string& v : known_vendors()) known += (known.empty() ? "" : ", ") + v;
  return Section<P>("Which IOMMUs to simulate and how the DMA domain translates; each vendor's model is "
                    "configured in its own section below.",
                    StructDefaults::Own)
      .custom(value_key("vendor", KeyType::String, "smmuv3,vtd,amdvi", "comma-separated: " + known, "",
                        "the IOMMU(s) to simulate; several run side by side on identical traffic"),
              read_vendors, write_vendors)
      .choice("translation", &P::translation, "nested", {"nested", "s1", "s2", "bypass"},
              "the DMA domain: stage 1 over stage 2, one stage, or untranslated");
}

// Each vendor's own section (driver.<vendor>) joins these in config_schema().
Section<driver::DriverTiming> driver_timing_keys() {
  using D = driver::DriverTiming;
  return Section<D>("The host driver's CPU costs, shared by every vendor's driver (platforms/driver/driver.h); "
                    "each vendor's own keys are in its section below.")
      .number("cpu_mhz", &D::cpu_mhz, 2000, 1, 100000, "MHz", "host CPU clock")
      .integer("descriptor_write_cycles", &D::descriptor_write_cycles, 20, 0, 1000000, "cycles",
               "one 8-byte table store, with its share of barriers")
      .integer("command_write_cycles", &D::command_write_cycles, 30, 0, 1000000, "cycles", "build and store one queue entry")
      .integer("op_overhead_cycles", &D::op_overhead_cycles, 400, 0, 10000000, "cycles",
               "locking and bookkeeping per operation")
      .number("mmio_write_ns", &D::mmio_write_ns, 150, 0, 1e6, "ns", "posted MMIO write to the IOMMU")
      .number("mmio_read_ns", &D::mmio_read_ns, 400, 0, 1e6, "ns", "non-posted MMIO read round trip")
      .number("poll_interval_ns", &D::poll_interval_ns, 50, 1, 1e6, "ns", "between completion polls")
      .integer("poll_read_cycles", &D::poll_read_cycles, 10, 0, 100000, "cycles", "cached read of the completion word")
      .number("sync_timeout_us", &D::sync_timeout_us, 100, 0.001, 1e7, "us",
              "a completion barrier not done by then fails the run with a message (Linux: 1 s)")
      .check("", [](const D& t) { return driver::validate(t); });
}

Section<P> platform_keys() {
  using Pools = driver::DriverMemory;
  const std::vector<uint64_t> pages{4096, 2ull << 20, 1ull << 30};
  return Section<P>("Where guest RAM, DMA buffers and the drivers' table pools live, and the page sizes.",
                    StructDefaults::Own)
      .integer("guest_ram_pa", &P::guest_ram_pa, 0x200000000ull, 0, 1ull << 47, "bytes", "where guest IPA 0 lives (a PA)")
      .integer("guest_ram_bytes", &P::guest_ram_bytes, 128ull << 20, 1u << 20, 1ull << 40, "bytes",
               "guest RAM, all mapped by stage 2")
      .integer("buffer_ipa", &P::buffer_ipa, 0, 0, 1ull << 47, "bytes",
               "where the DMA buffers start (an IPA, or a PA offset into guest RAM when not nested)")
      .integer("iommus", &P::iommus, 1, 1, kMaxIommus, "units",
               "physical IOMMUs per lane, each its own model and driver; an endpoint sits behind "
               "traffic.endpoints[i].iommu (stats iommu<k>, driver<k> when more than one)")
      .one_of("stage2_page_bytes", &P::s2_page, 4096, pages, "bytes", "leaf size of the stage-2 tables")
      .one_of("stage1_page_bytes", &P::s1_page, 4096, pages, "bytes", "leaf size of the stage-1 tables")
      .embed(&P::pools, Section<Pools>("")
                            .integer("table_pool_bytes", &Pools::table_pool_bytes, 256ull << 20, 1u << 20, 64ull << 30,
                                     "bytes", "host memory for the drivers' tables and queues, at 0x1_0000_0000")
                            .multiple_of(4096)
                            .integer("guest_table_pool_bytes", &Pools::guest_pool_bytes, 16u << 20, 1u << 20,
                                     64ull << 30, "bytes", "guest memory for nested stage-1 tables and guest config")
                            .multiple_of(4096));
}

// traffic.ats: the endpoint's ATC (traffic/atc.h, docs/ats.md).
Section<traffic::AtsConfig> ats_keys() {
  using A = traffic::AtsConfig;
  return Section<A>("The endpoint's PCIe ATS and its ATC (docs/ats.md); off by default.")
      .boolean("enabled", &A::enabled, false,
               "the device translates through its ATC with ATS requests; its driver enables ATS for it")
      .integer("entries", &A::entries, 64, 1, 1u << 20, "entries", "ATC entries (one 4 KB translation each)")
      .integer("ways", &A::ways, 4, 0, 1u << 20, "ways", "ATC associativity; 0: fully associative")
      .integer("lookup_cycles", &A::lookup_cycles, 1, 0, 10000, "cycles", "endpoint clocks per ATC lookup")
      .number("invalidation_response_ns", &A::invalidation_response_ns, 500, 0, 1e9, "ns",
              "from an Invalidate Request's arrival to the device's Invalidate Completion")
      .boolean("respond", &A::respond, true, "false: the device never answers an Invalidate Request (tests the timeouts)")
      .check("", [](const A& a) { return traffic::validate(a); });
}

// EndpointConfig's member defaults are the endpoint model's own, for its unit tests (reads
// only, a window at 0, no limit), so they are not checked against these.
Section<traffic::EndpointConfig> traffic_keys() {
  using E = traffic::EndpointConfig;
  using traffic::Pattern;
  return Section<E>("What each lane's PCIe endpoint sends (traffic/endpoint.h); every lane gets the same.",
                    StructDefaults::Own)
      .integer("requester_id", &E::requester_id, 16, 0, 0xFFFF, "", "the device's requester ID (bus:devfn)")
      .custom(value_key("pasid", KeyType::Integer, -1, "-1 .. 1048575", "", "PASID of every DMA; -1: none"),
              [](const ConfigReader& r, E& e) {
                const int64_t pasid = r.signed_integer("pasid", -1, (1 << 20) - 1);
                e.pasid_valid = pasid >= 0;
                e.pasid = pasid >= 0 ? uint32_t(pasid) : 0;
              },
              [](const E& e) { return json(e.pasid_valid ? int64_t(e.pasid) : int64_t(-1)); })
      .integer("outstanding", &E::outstanding, 8, 1, 4096, "DMAs", "DMAs in flight at once")
      .choice("pattern", &E::pattern, Pattern::Random,
              {{"random", Pattern::Random}, {"sequential", Pattern::Sequential}, {"strided", Pattern::Strided}},
              "where in the window each DMA goes")
      .integer("window_iova", &E::window_base, 1ull << 30, 0, 1ull << 47, "bytes", "start of the DMA window")
      .integer("window_bytes", &E::window_bytes, 32ull << 20, 4096, 1ull << 40, "bytes", "size of the DMA window")
      .integer("stride_bytes", &E::stride_bytes, 4096, 1, 1ull << 40, "bytes",
               "distance between consecutive DMAs of the strided pattern")
      .integer("transfer_bytes", &E::transfer_bytes, 64, 1, traffic::kMaxTransferBytes, "bytes",
               "size of each DMA; beyond 4096 it spans pages, translated one by one")
      .number("read_fraction", &E::read_fraction, 0.7, 0, 1, "", "share of DMAs that are reads")
      .number("issue_gap_ns", &E::issue_gap_ns, 0, 0, 1e9, "ns", "least time between issues of one slot")
      .integer("transactions", &E::total_transactions, 100000, 1, 1ull << 40, "DMAs",
               "DMAs per lane (per endpoint, with traffic.endpoints)")
      .number("clock_mhz", &E::clock_mhz, 250, 1, 100000, "MHz", "endpoint clock")
      .section("ats", &E::ats, ats_keys())
      .check("", [](const E& e) { return traffic::validate(e); });
}

// The traffic keys an element of traffic.endpoints may change; the window (which the
// lane's driver maps once) is shared by every endpoint.
const std::vector<std::string>& per_endpoint_keys() {
  static const std::vector<std::string> keys{"requester_id", "pasid",          "outstanding", "pattern",
                                             "stride_bytes", "transfer_bytes", "read_fraction", "issue_gap_ns",
                                             "transactions", "clock_mhz",      "ats"};
  return keys;
}

std::string per_endpoint_list() {
  std::string list;
  for (const std::string& k : per_endpoint_keys()) list += (list.empty() ? "" : ", ") + k;
  return list;
}

// Where an element of traffic.endpoints sits on the platform (not traffic: the lane routes it).
struct EndpointPlacement {
  unsigned iommu = 0;
};
const Section<EndpointPlacement>& placement_keys() {
  static const Section<EndpointPlacement> keys =
      Section<EndpointPlacement>("", StructDefaults::Own)
          .integer("iommu", &EndpointPlacement::iommu, 0, 0, kMaxIommus - 1, "",
                   "the physical IOMMU the endpoint sits behind (below platform.iommus)");
  return keys;
}

// Each element: the traffic keys above, changed by the element's own, and its placement.
void read_endpoints(const ConfigReader& r, P& p) {
  const json& list = r.list("endpoints");
  const Section<traffic::EndpointConfig> keys = traffic_keys();
  const json base = keys.write(p.ep);
  p.listed.clear();
  p.listed_iommu.clear();
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = r.path("endpoints") + "[" + std::to_string(i) + "]";
    const ConfigReader element(list[i], where);
    if (!list[i].is_object()) element.fail_here("expected an object (the traffic keys this endpoint changes)");
    json merged = base, placement = placement_keys().write(EndpointPlacement{});
    for (auto it = list[i].begin(); it != list[i].end(); ++it) {
      if (placement.contains(it.key())) {
        placement[it.key()] = *it;
        continue;
      }
      const auto& own = per_endpoint_keys();
      if (std::find(own.begin(), own.end(), it.key()) == own.end())
        element.fail(it.key(), base.contains(it.key()) ? "shared by every endpoint of a lane: set traffic." + it.key()
                                                       : "unknown key (an endpoint may set " + per_endpoint_list() + ")");
      if (it->is_object() && merged[it.key()].is_object()) merged[it.key()].update(*it);   // ats: key by key
      else merged[it.key()] = *it;
    }
    traffic::EndpointConfig e = p.ep;
    keys.read(ConfigReader(merged, where), e);
    p.listed.push_back(e);
    p.listed_iommu.push_back(placement_keys().read(ConfigReader(placement, where)).iommu);
  }
}

json write_endpoints(const P& p) {
  json list = json::array();
  for (size_t i = 0; i < p.listed.size(); ++i) {
    const json all = traffic_keys().write(p.listed[i]);
    json mine = placement_keys().write(EndpointPlacement{p.listed_iommu[i]});
    for (const std::string& k : per_endpoint_keys()) mine[k] = all[k];
    list.push_back(mine);
  }
  return list;
}

Section<P> traffic_run_keys() {
  return Section<P>("What each lane's PCIe endpoints send (traffic/endpoint.h); every lane gets the same.",
                    StructDefaults::Own)
      .embed(&P::ep, traffic_keys())
      .custom(value_key("endpoints", KeyType::List, json::array(), "list of objects", "",
                        "several endpoints per lane, each an object holding the keys above it changes (" +
                            per_endpoint_list() + ") and `iommu`, the physical IOMMU it sits behind (0 .. "
                            "platform.iommus - 1, default 0); they share the window. Empty: one endpoint"),
              read_endpoints, write_endpoints);
}

Section<P> workload_keys() {
  return Section<P>("What the driver does while the traffic runs.", StructDefaults::Own)
      .integer("unmap_interval_ns", &P::unmap_interval_ns, 5000, 0, 1ull << 40, "ns",
               "time between unmap/invalidate operations; 0 disables the loop")
      .integer("churn_pages", &P::churn_pages, 64, 1, 1u << 20, "pages",
               "4 KB pages beside the DMA window that are unmapped and remapped")
      .integer("domain_invalidate_every", &P::domain_every, 64, 0, 1u << 30, "operations",
               "every Nth operation flushes the whole domain; 0: never")
      .integer("extra_pasids", &P::extra_pasids, 0, 0, 14, "PASIDs",
               "also attach the DMA domain through PASIDs 1..N (s1 or nested)")
      .choice("mode", &P::mode, "churn", {"churn", "stress", "dma_api", "nic", "storage", "trace"},
              "churn: unmap and remap pages beside the DMA window; stress: change the window itself; "
              "dma_api: CPUs map and unmap the window's buffers through Linux's DMA API (section dma_api), "
              "each every unmap_interval_ns; nic: a NIC's RX and TX rings (section nic, docs/workloads.md); "
              "storage: NVMe-like queues (section storage); trace: replay trace.file (docs/trace_replay.md)")
      .boolean("mixed_leaves", &P::mixed_leaves, false,
               "stress: alternate 2 MB leaves and 4 KB leaves per 2 MB of the window")
      .check("mixed_leaves",
             [](const P& p) { return p.mixed_leaves && p.mode != "stress" ? "only with workload.mode = stress" : ""; });
}

const Section<P>& run_keys() {
  static const Section<P> keys = Section<P>("", StructDefaults::Own)
                                     .section("sim", sim_keys())
                                     .section("memory", &P::mem, memory_keys())
                                     .section("iommu", iommu_keys())
                                     .section("driver", &P::timing, driver_timing_keys())
                                     .section("platform", platform_keys())
                                     .section("traffic", traffic_run_keys())
                                     .section("pcie", &P::pcie, pcie_keys())
                                     .section("workload", workload_keys())
                                     .section("dma_api", &P::dma, dma_api_keys())
                                     .section("nic", &P::nic, nic_keys())
                                     .section("storage", &P::storage, storage_keys())
                                     .section("trace", &P::trace, trace_keys())
                                     .section("vmm", &P::vmm, vmm_keys())
                                     .section("guest", &P::guest, guest_keys());
  return keys;
}

// Leaf size of the tables the DMA domain uses, and the churn region in those units.
uint64_t churn_unit(const Params& p) { return p.translation == "s2" ? p.s2_page : p.s1_page; }
uint64_t churn_units(const Params& p) {
  const uint64_t unit = churn_unit(p);
  return std::max<uint64_t>(1, (p.churn_pages * 4096 + unit - 1) / unit);
}

// The memory a job workload's buffers (and rings) take from platform.buffer_ipa.
uint64_t job_footprint(const Params& p) {
  if (p.mode == "trace") return TraceWorkload::footprint(p.trace_events);
  if (p.mode == "storage") return StorageWorkload::footprint(p.storage, p.s1_page);
  return NicWorkload::footprint(p.nic, p.s1_page);
}

// trace.file: its events, each naming a device the lane has.
void read_trace_events(const ConfigReader& tr, Params& p) {
  if (p.trace.file.empty()) tr.fail("file", "needed with workload.mode = trace");
  try {
    p.trace_events = read_trace(p.trace.file, p.s1_page);
  } catch (const std::runtime_error& e) {
    tr.fail("file", e.what());
  }
  for (const TraceEvent& e : p.trace_events) {
    const bool known = std::any_of(p.eps.begin(), p.eps.end(), [&](const EndpointSettings& s) { return s.config.requester_id == e.device; });
    if (!known)
      tr.fail("file", p.trace.file + ":" + std::to_string(e.line) + ": device " + std::to_string(e.device) +
                          " is no endpoint's requester ID (traffic.requester_id, traffic.endpoints)");
  }
}

// workload.mode = nic, storage or trace: the checks, and each endpoint's slot buffers sized to the
// workload's largest DMA (traffic.transfer_bytes does not apply).
void read_job_workload(const ConfigReader& root, Params& p) {
  const ConfigReader t = root.section("traffic"), w = root.section("workload");
  // A guest's driver runs NIC and storage over its vIOMMU: nested, on trapped lanes only.
  const bool guest = p.translation == "nested" && p.guests_only();
  if (p.translation != "s1" && !guest)
    w.fail("mode", p.mode + " needs translation s1 (the DMA API's domain per device), or nested with vmm.paths = trapped");
  if (p.mode != "trace" && p.eps.size() > 1) t.fail("endpoints", "workload.mode = " + p.mode + " drives one endpoint per lane");
  if (p.warmup) root.section("sim").fail("warmup_transactions", "not with workload.mode = " + p.mode + " (its run ends with its traffic)");
  if (p.mode == "trace") read_trace_events(root.section("trace"), p);
  if (p.mode == "trace" && guest && std::find(p.vendors.begin(), p.vendors.end(), "vtd") != p.vendors.end())
    for (const TraceEvent& e : p.trace_events)
      if (e.pasid)
        root.section("trace").fail("file", "vtd@trapped nests the RID_PASID entry only (QEMU propagates PASID 0): "
                                           "the trace uses PASID " + std::to_string(*e.pasid));
  const uint32_t largest = p.mode == "trace"     ? TraceWorkload::max_dma_bytes(p.trace_events)
                           : p.mode == "storage" ? StorageWorkload::max_dma_bytes(p.storage)
                                                 : NicWorkload::max_dma_bytes(p.nic);
  for (EndpointSettings& e : p.eps) {
    e.config.transfer_bytes = largest;
    if (uint64_t(e.config.outstanding) * largest > traffic::kMaxBufferBytes)
      e.fail("outstanding", "times the workload's largest DMA (" + std::to_string(largest) + " bytes) exceeds the " +
                                std::to_string(traffic::kMaxBufferBytes >> 20) + " MiB an endpoint may buffer");
  }
}

// Reads the run's sections, then the checks that span sections.
// vmm.vms and vmm.assign against the endpoints and lanes (what vmm_keys checks alone: the
// VMs' own devices and IDs, already done).
void check_vm_assignment(const ConfigReader& root, const Params& p) {
  const ConfigReader v = root.section("vmm");
  const bool trapped = p.has_nested_guest();
  // A virtio lane holds one VM, whose endpoints are named by their RIDs: beside a trapped
  // lane these would shape the trapped lane only.
  if (p.has_path(kVirtioPath)) {
    if (p.vmm.vms > 1) v.fail("vms", "virtio runs one VM (vmm.paths has virtio): set 1");
    if (!p.vmm.assign.empty())
      v.fail("assign", "virtio runs one VM whose endpoints are named by their RIDs (vmm.paths has virtio): leave empty");
    if (p.vmm.teardown_vm) v.fail("teardown_vm", "virtio runs one VM and does not tear it down (vmm.paths has virtio): use -1");
  }
  if (!trapped && p.vmm.vms > 1) v.fail("vms", "needs a trapped lane (vmm.paths = trapped or native,trapped)");
  if (!trapped && !p.vmm.assign.empty()) v.fail("assign", "needs a trapped lane (vmm.paths = trapped or native,trapped)");
  if (!trapped && p.vmm.teardown_vm) v.fail("teardown_vm", "needs a trapped lane (vmm.paths = trapped or native,trapped)");
  if (!trapped) return;
  const std::vector<VmAssignment> assign = vm_assignment(p.vmm, p.eps.size());
  const bool queues_nested = std::find(p.vendors.begin(), p.vendors.end(), "vtd") != p.vendors.end();
  for (size_t i = 0; i < assign.size(); ++i) {
    const std::string at = "assign[" + std::to_string(i) + "]";
    if (assign[i].endpoint >= p.eps.size())
      v.fail(at + ".endpoint", "endpoint " + std::to_string(assign[i].endpoint) + " does not exist (" +
                                   std::to_string(p.eps.size()) + " endpoint" + (p.eps.size() > 1 ? "s" : "") + ")");
    const EndpointSettings& e = p.eps[assign[i].endpoint];
    if (assign[i].pasid && (!e.config.pasid_valid || e.config.pasid != *assign[i].pasid))
      v.fail(at + ".pasid", "the endpoint's DMAs carry " + e.path + ".pasid, which must be this PASID");
    // VT-d's guest drives its work queue through its vVT-d (the stressed driver, or a static
    // domain beside it, would be the wrong one); SMMUv3's and AMD's see theirs untranslated
    // (docs/vmm.md, "The topology as a run"), which the stress workload takes beside endpoint 0.
    if (assign[i].pasid && (p.dma_api || p.jobs || (p.stress && queues_nested)))
      v.fail(at + ".pasid", std::string("PASID-granular assignment runs with the default workload only (workload.mode)") +
                                (p.stress ? ", or under stress on smmuv3@trapped and amdvi@trapped (vtd@trapped's guest "
                                            "drives its work queue through its vVT-d)"
                                          : ""));
    if (assign[i].pasid && p.stress && assign[i].endpoint == 0)
      v.fail(at + ".pasid", "workload.mode = stress drives endpoint 0 through its guest's driver: it cannot be a work "
                            "queue the guest sees untranslated");
    if (assign[i].pasid && p.extra_pasids)
      v.fail(at + ".pasid", "not with workload.extra_pasids: the guest's device is one PASID of the physical one");
    // One RID in two assignments: PASIDs of one device (checked above), in two VMs; whole
    // twice is a RID assigned twice.
    for (size_t j = 0; j < i; ++j) {
      if (p.eps[assign[j].endpoint].config.requester_id != e.config.requester_id) continue;
      if (!assign[i].pasid || !assign[j].pasid)
        v.fail(at + ".endpoint", "RID " + std::to_string(e.config.requester_id) + " is already assigned by assign[" +
                                     std::to_string(j) + "]: a RID is assigned whole once, or PASID by PASID");
      if (assign[i].vm == assign[j].vm)
        v.fail(at + ".vm", "VM " + std::to_string(assign[i].vm) + " already has a PASID of RID " +
                               std::to_string(e.config.requester_id) + " (assign[" + std::to_string(j) + "])");
    }
  }
  for (size_t e = 0; e < p.eps.size(); ++e)
    if (std::none_of(assign.begin(), assign.end(), [e](const VmAssignment& a) { return a.endpoint == e; }))
      v.fail("assign", "endpoint " + std::to_string(e) + " (" + p.eps[e].path + ") is in no VM");
  if (p.vmm.vms > 1 && p.jobs)
    v.fail("vms", "workload.mode = " + p.mode + " drives one VM's driver: use vmm.vms = 1");
}

Params read_params(const json& j) {
  ConfigReader root(j, "");
  Params p;
  run_keys().read(root, p);
  p.ep.seed = p.seed;
  p.stress = p.mode == "stress";
  p.dma_api = p.mode == "dma_api";
  p.jobs = p.mode == "nic" || p.mode == "storage" || p.mode == "trace";
  const ConfigReader m = root.section("memory"), pl = root.section("platform"), t = root.section("traffic"),
                     w = root.section("workload");
  // The lane's endpoints; the k-th has seed + k, so they differ from each other but every
  // lane sees the same traffic.
  if (p.listed.empty()) p.eps.push_back({p.ep, "traffic"});
  for (size_t i = 0; i < p.listed.size(); ++i) {
    p.eps.push_back({p.listed[i], "traffic.endpoints[" + std::to_string(i) + "]", p.listed_iommu[i]});
    p.eps.back().config.seed = p.seed + i;
    if (p.eps.back().iommu >= p.iommus)
      p.eps.back().fail("iommu", "IOMMU " + std::to_string(p.eps.back().iommu) + " does not exist (platform.iommus = " +
                                     std::to_string(p.iommus) + ")");
  }
  uint64_t total = 0;
  for (size_t i = 0; i < p.eps.size(); ++i) {
    const EndpointSettings& e = p.eps[i];
    total += e.config.total_transactions;
    // Endpoints may share a RID as the work queues of one device: each its own PASID, on one
    // IOMMU; with ATS they share the device's one ATC (traffic::Endpoint::share_atc_of), so
    // its settings are the device's.
    for (size_t j = 0; j < i; ++j) {
      const EndpointSettings& o = p.eps[j];
      if (o.config.requester_id != e.config.requester_id) continue;
      if (!e.config.pasid_valid || !o.config.pasid_valid || e.config.pasid == o.config.pasid)
        e.fail("requester_id", "already used by " + o.path + " (endpoints share a RID only as work queues of one "
                               "device, each with a PASID of its own)");
      if (e.iommu != o.iommu) e.fail("iommu", "a device sits behind one IOMMU (" + o.path + " shares its RID)");
      const traffic::AtsConfig &a = e.config.ats, &b = o.config.ats;
      if (a.enabled != b.enabled || (a.enabled && !traffic::same_atc(a, b)))
        e.fail("ats", "must equal " + o.path + ".ats: work queues of one device (a shared RID) share its one ATC");
      if (a.enabled && e.config.clock_mhz != o.config.clock_mhz)
        e.fail("clock_mhz", "must equal " + o.path + ".clock_mhz: work queues of one device share its ATC and its clock");
    }
    if (e.config.pasid_valid && p.translation == "s2")
      e.fail("pasid", "with translation s2 the DMA domain attaches to the RID, not a PASID (use -1)");
    if (p.extra_pasids && e.config.pasid_valid && e.config.pasid <= p.extra_pasids)
      e.fail("pasid", "collides with workload.extra_pasids (PASIDs 1.." + std::to_string(p.extra_pasids) + ")");
  }
  // vmm.paths: the lanes of each vendor.
  p.paths.clear();
  for (size_t pos = 0; pos <= p.vmm.paths.size();) {
    const size_t comma = std::min(p.vmm.paths.find(',', pos), p.vmm.paths.size());
    p.paths.push_back(p.vmm.paths.substr(pos, comma - pos));
    pos = comma + 1;
  }
  if (p.has_nested_guest()) {
    const ConfigReader v = root.section("vmm");
    if (p.vmm.inject == vmm::VmmFault::DropAtcInv &&
        std::none_of(p.eps.begin(), p.eps.end(), [](const EndpointSettings& e) { return e.config.ats.enabled; }))
      v.fail("inject", "drop_atc_inv drops the guest's ATC invalidations: it needs an endpoint with ATS (traffic.ats.enabled)");
    if (p.translation != "nested")
      v.fail("paths", std::string(p.has_path(kTrappedPath) ? "trapped" : "accelerated") +
                          " needs iommu.translation = nested (the guest owns stage 1 over the host's stage 2)");
    if (p.vmm.inject == vmm::VmmFault::DropHostFlush && !p.stress && !p.vmm.teardown_vm)
      v.fail("inject", "drop_host_flush drops the host's invalidation of the VMM's IOMMU_IOAS_UNMAPs: it needs "
                       "workload.mode = stress (page moves) or vmm.teardown_vm");

    if (p.mixed_leaves) v.fail("paths", "trapped and accelerated do not run workload.mixed_leaves yet");
  } else {
    // Settings of the VMM's trapped path would silently do nothing on native lanes.
    const ConfigReader v = root.section("vmm");
    if (p.vmm.inject != vmm::VmmFault::None && p.vmm.inject != vmm::VmmFault::DropHostFlush)
      v.fail("inject", "needs a trapped lane (vmm.paths = trapped or native,trapped)");
    if (p.vmm.completion != vmm::VmmCompletion::Synchronous && !p.has_path(kVirtioPath))
      v.fail("completion", "needs a trapped lane or a virtio lane (vmm.paths = trapped, virtio, or with native)");
  }
  // drop_host_flush is the VMM's bug: its virtio-iommu device's, or its own IOAS unmaps' on a
  // trapped or accelerated lane; a native lane has no VMM.
  if (p.vmm.inject == vmm::VmmFault::DropHostFlush && !p.has_path(kVirtioPath) && !p.has_nested_guest())
    root.section("vmm").fail("inject", "drop_host_flush is the VMM's bug: it needs a virtio, trapped or accelerated "
                                       "lane");
  if (p.has_path(kVirtioPath)) {
    const ConfigReader v = root.section("vmm");
    if (p.translation != "s1" && p.translation != "nested")
      v.fail("paths", "virtio needs iommu.translation s1 or nested (the guest's domain is single-stage; its host "
                      "maps it into a single-stage domain)");
    if (p.mode == "churn")
      root.section("workload").fail("mode", "churn unmaps single leaves of the window's one mapping, and virtio-iommu "
                                            "unmaps whole mappings only (Linux viommu_del_mappings): use dma_api, nic, "
                                            "storage or trace with vmm.paths = virtio");
    if (p.mixed_leaves) v.fail("paths", "virtio does not run workload.mixed_leaves");
    if (p.iommus != 1) pl.fail("iommus", "vmm.paths = virtio models one IOMMU (set 1)");
  }
  // A cache-tag policy acts on its vendor's trapped lane only: anywhere else it would be ignored.
  auto trapped_lane_of = [&](const char* vendor) {
    return p.has_nested_guest() && std::find(p.vendors.begin(), p.vendors.end(), vendor) != p.vendors.end();
  };
  if (p.vmm.amd_domid != driver::AmdNestedDomainIds::PerGuestDomain && !trapped_lane_of("amdvi"))
    root.section("vmm").fail("amd_domid", "applies to amdvi@trapped only (iommu.vendor amdvi, vmm.paths trapped)");
  if (p.vmm.arm_vmid != driver::ArmNestedVmids::PerViommu && !trapped_lane_of("smmuv3"))
    root.section("vmm").fail("arm_vmid", "applies to smmuv3@trapped only (iommu.vendor smmuv3, vmm.paths trapped)");
  if (p.guest.amd_gcr3 != driver::AmdGcr3Tables::PerDevice && !trapped_lane_of("amdvi"))
    root.section("guest").fail("amd_gcr3", "applies to amdvi@trapped only (iommu.vendor amdvi, vmm.paths trapped)");
  if (p.iommus > 1) {
    if (p.pcie.enabled)
      pl.fail("iommus", "one root complex (pcie.enabled) feeds one IOMMU: several IOMMUs need pcie.enabled = false");
    if (p.mode == "trace")
      for (const EndpointSettings& e : p.eps)
        if (e.iommu != p.eps.front().iommu)
          e.fail("iommu", "workload.mode = trace drives one IOMMU's driver: put every endpoint behind the same IOMMU");
  }
  check_vm_assignment(root, p);
  // Stress drives endpoint 0; with several VMs the others are other VMs' devices, each VM's
  // guest giving them a static DMA domain while endpoint 0's VM is stressed beside them.
  // Natively, the others may be work queues of endpoint 0's device (its RID, each its own
  // PASID), which stay on its first domain while it is stressed.
  const bool work_queues_of_endpoint0 =
      std::all_of(p.eps.begin() + 1, p.eps.end(), [&](const EndpointSettings& e) {
        return e.config.requester_id == p.eps[0].config.requester_id;
      });
  if (p.stress && p.eps.size() > 1 && work_queues_of_endpoint0) {
    if (p.has_nested_guest() || p.has_path(kVirtioPath))
      t.fail("endpoints", "workload.mode = stress with work queues of endpoint 0's device runs on native lanes only "
                          "(a guest is given a RID whole or PASID by PASID, never both)");
    // Its reattach moves endpoint 0's PASID onto a nested domain over another stage-2 parent
    // while the queues stay over the first: an SMMUv3 STE holds one stage 2 for every SSID
    // of its stream, an AMD DTE one host table for every PASID of its device.
    for (const char* one_stage2 : {"smmuv3", "amdvi"})
      if (p.translation == "nested" && std::find(p.vendors.begin(), p.vendors.end(), one_stage2) != p.vendors.end())
        t.fail("endpoints", std::string("workload.mode = stress with work queues of endpoint 0's device and translation "
                                        "nested: ") + one_stage2 + " holds one stage 2 per device (STE / DTE), and the "
                                        "stressed PASID moves to another parent while the queues stay (use s1, or vtd)");
  } else if (p.stress && p.eps.size() > 1) {
    if (p.vmm.vms == 1 || !p.trapped_only())
      t.fail("endpoints", "workload.mode = stress drives one endpoint (or, with vmm.vms above 1 and vmm.paths = "
                          "trapped, one per VM; or natively, work queues of endpoint 0's device beside it)");
    const std::vector<VmAssignment> assign = vm_assignment(p.vmm, p.eps.size());
    auto vm_of = [&](size_t e) {
      return std::find_if(assign.begin(), assign.end(), [e](const VmAssignment& a) { return a.endpoint == e; })->vm;
    };
    // A work queue the guest sees untranslated (SMMUv3, AMD; the assignment checks above) is
    // no device its driver programs: it may share endpoint 0's VM, and sees its VMM's moves.
    auto untranslated = [&](size_t e) {
      return std::any_of(assign.begin(), assign.end(), [e](const VmAssignment& a) { return a.endpoint == e && a.pasid; });
    };
    for (size_t e = 1; e < p.eps.size(); ++e)
      if (vm_of(e) == vm_of(0) && !untranslated(e))
        root.section("vmm").fail("assign", "workload.mode = stress drives endpoint 0 alone in its VM: endpoint " +
                                               std::to_string(e) + " shares its VM");
  }
  if (p.dma_api && p.eps.size() > 1) t.fail("endpoints", "workload.mode = dma_api drives one endpoint");
  if (p.jobs) read_job_workload(root, p);
  // Linux turns ATS off for an identity (bypass) domain, and the STE/context/DTE then refuse
  // translated requests: a device that still used ATS would fault every DMA.
  for (const EndpointSettings& e : p.eps)
    if (e.config.ats.enabled && p.translation == "bypass")
      e.fail("ats.enabled", "ATS needs a translating domain; with iommu.translation = bypass the IOMMU refuses translated requests");

  // A completion barrier waits for the walks an invalidation overtook (a cold nested walk
  // is 24 reads) and for its own queue reads and status write: with slow memory it cannot
  // complete within driver.sync_timeout_us. Refuse such a pair up front (48 reads' margin).
  const double read_ns = double(p.mem.latency_cycles) * 1000.0 / p.mem.clock_mhz;
  if (read_ns * kBarrierReads > p.timing.sync_timeout_us * 1000.0)
    m.fail("latency_cycles", "a memory read of " + std::to_string(read_ns) + " ns makes a barrier (up to " +
                                 std::to_string(kBarrierReads) + " reads) outlast driver.sync_timeout_us (" +
                                 std::to_string(p.timing.sync_timeout_us) + " us): raise driver.sync_timeout_us");

  // Stage 1 maps the window onto the buffers with stage1_page_bytes leaves, so their
  // start (an IPA, or a PA offset into guest RAM with s1) must be aligned to it.
  if (p.buffer_ipa % p.s1_page) pl.fail("buffer_ipa", "must be aligned to platform.stage1_page_bytes (" + std::to_string(p.s1_page) + ")");
  if (p.guest_ram_pa + p.guest_ram_bytes > p.mem.size_bytes)
    pl.fail("guest_ram_pa", "guest RAM ends beyond simulated memory (" + std::to_string(p.mem.size_bytes >> 30) + " GiB)");
  if (p.guest_ram_pa % p.s2_page || p.guest_ram_bytes % p.s2_page) pl.fail("guest_ram_pa", "guest RAM must be aligned to stage2_page_bytes");
  if (p.translation == "s1" && p.guest_ram_pa % p.s1_page)
    pl.fail("guest_ram_pa", "with translation s1 guest RAM holds the buffers and must be aligned to stage1_page_bytes");
  if (p.guest_ram_pa < (p.pools.table_pool_base + p.pools.table_pool_bytes) && p.guest_ram_pa + p.guest_ram_bytes > p.pools.table_pool_base)
    pl.fail("guest_ram_pa", "overlaps the host table pool at 0x100000000 (platform.table_pool_bytes)");

  if (p.ep.window_base % p.s1_page || p.ep.window_bytes % p.s1_page) t.fail("window_iova", "window must be aligned to platform.stage1_page_bytes");
  if (p.warmup >= total)
    root.section("sim").fail("warmup_transactions", "must be less than the DMAs of a lane (traffic.transactions: " +
                                                         std::to_string(total) + "), or 0 for no warm-up");

  p.dma.api.cpu_mhz = p.timing.cpu_mhz;
  // A guest's DMA API builds its stage 1 over its VMM's stage 2: nested, on trapped lanes only.
  if (p.dma_api && p.translation != "s1" && !(p.translation == "nested" && p.guests_only()))
    w.fail("mode", "dma_api needs translation s1 (one DMA domain per device), or nested with vmm.paths = trapped "
                   "(the guest's DMA API over its vIOMMU)");
  if (p.dma_api) {
    auto d = root.section("dma_api");
    const uint64_t buf = p.dma.buffer_bytes, len = p.ep.transfer_bytes;
    if (buf % p.s1_page) d.fail("buffer_bytes", "must be a multiple of platform.stage1_page_bytes");
    if (p.ep.window_bytes / p.dma.api.cpus < buf)
      t.fail("window_bytes", "with workload.mode = dma_api the window must hold a buffer (dma_api.buffer_bytes) per CPU (dma_api.cpus)");
    // A DMA stays inside one buffer: at most a page never crosses one (the address
    // generator keeps it in its page); a longer one starts at a multiple of its length.
    if (len > 4096 && (buf % len || (p.ep.pattern == traffic::Pattern::Strided && p.ep.stride_bytes % len)))
      d.fail("buffer_bytes", "a DMA must stay in one buffer: with traffic.transfer_bytes above 4096, buffer_bytes (and "
                             "a strided pattern's stride) must be multiples of it");
  }
  if (p.stress && p.translation == "bypass") w.fail("mode", "stress needs translation s1, s2 or nested");
  if (p.stress && p.extra_pasids) w.fail("extra_pasids", "not with workload.mode = stress");
  if (p.mixed_leaves && churn_unit(p) != 4096)
    w.fail("mixed_leaves", "needs 4 KB pages in the DMA domain (platform.stage1_page_bytes, or stage2_page_bytes for s2)");
  // The unit a window leaf (or mixed 2 MB chunk) occupies, and the region stride.
  const uint64_t unit = p.mixed_leaves ? (2ull << 20) : churn_unit(p);
  p.stride = (p.ep.window_bytes + unit - 1) / unit * unit;
  if (p.stress && p.ep.window_bytes % unit)
    t.fail("window_bytes", "with workload.mixed_leaves the window must be a multiple of 2 MiB");
  if (p.extra_pasids && (p.translation == "s2" || p.translation == "bypass"))
    w.fail("extra_pasids", "needs translation s1 or nested (a stage-2 domain attaches to a RID, not a PASID)");
  if (p.translation == "s2") {
    // The device addresses IPAs directly; the window and churn region are guest RAM.
    if (p.ep.window_base % p.s2_page || p.ep.window_bytes % p.s2_page)
      t.fail("window_iova", "with translation s2 the window must be aligned to platform.stage2_page_bytes");
    if (p.ep.window_base + p.ep.window_bytes + churn_units(p) * churn_unit(p) > p.guest_ram_bytes)
      t.fail("window_iova", "with translation s2 the window and churn region must lie inside guest RAM");
  }
  // Everything the traffic and churn touch must fit in guest RAM (buffers + guest tables).
  // Under stress a nested window moves between two IPA regions.
  // The DMA API's buffers alternate between two PA regions of the window's size.
  const uint64_t need = p.stress ? 2 * p.stride : p.dma_api ? 2 * p.ep.window_bytes
                     : p.jobs ? job_footprint(p) : p.ep.window_bytes + churn_units(p) * churn_unit(p);
  p.pools.guest_pool_ipa = (p.buffer_ipa + need + p.s2_page + (p.s2_page - 1)) & ~(p.s2_page - 1);
  if (p.pools.guest_pool_ipa + p.pools.guest_pool_bytes > p.guest_ram_bytes)
    pl.fail("guest_ram_bytes", "too small for the DMA buffers and platform.guest_table_pool_bytes of guest tables");
  if (p.stress && p.buffer_ipa % p.s2_page) pl.fail("buffer_ipa", "with workload.mode = stress must be aligned to platform.stage2_page_bytes");
  // A stage-2 domain maps all of guest RAM: its leaf tables alone take 8 bytes per page.
  if ((p.translation == "s2" || p.translation == "nested") &&
      p.guest_ram_bytes / p.s2_page * 8 > p.pools.table_pool_bytes / p.iommus / 2)
    pl.fail("table_pool_bytes", "too small for the stage-2 tables of platform.guest_ram_bytes (" +
                                    std::to_string(p.guest_ram_bytes / p.s2_page * 8) + " bytes of leaf tables" +
                                    (p.iommus > 1 ? " per IOMMU, each with 1/" + std::to_string(p.iommus) + " of the pool" : "") +
                                    "; raise it or use larger platform.stage2_page_bytes)");
  // Regions beyond guest RAM that stress remaps move pages to must exist in memory.
  if (p.stress && p.guest_ram_pa + 2 * p.guest_ram_bytes + 4 * p.stride > p.mem.size_bytes)
    pl.fail("guest_ram_bytes", "the stress workload's target regions end beyond simulated memory");
  // Several VMs: each its guest RAM (and stress's target regions) after the previous one's.
  p.vm_ram_stride = p.stress ? (2 * p.guest_ram_bytes + 4 * p.stride + p.s2_page - 1) / p.s2_page * p.s2_page
                             : p.guest_ram_bytes;
  if (p.vmm.vms > 1 && p.guest_ram_pa + p.vmm.vms * p.vm_ram_stride > p.mem.size_bytes)
    root.section("vmm").fail("vms", std::to_string(p.vmm.vms) + " VMs' guest RAM (" +
                                        std::to_string(p.vm_ram_stride >> 20) + " MiB apart from platform.guest_ram_pa) "
                                        "ends beyond simulated memory");
  return p;
}

}  // namespace

const KeyInfo& config_schema() {
  static const KeyInfo schema = [] {
    KeyInfo root = run_keys().info("");
    for (const LaneType& lane : lane_types()) {
      root.find("iommu")->keys.push_back(lane.iommu_keys());
      root.find("driver")->keys.push_back(lane.driver_keys());
    }
    return root;
  }();
  return schema;
}

// One (vendor, path) slice of the run: its memory, IOMMU + driver, endpoints, root complex (with
// pcie.enabled) and workload state.
struct Lane {
  std::string vendor;
  std::string path = kNativePath;   // the invalidation path its driver's invalidations take
  std::string name;                 // lane_name(vendor, path): its stats' prefix
  std::string module;               // its SystemC modules' prefix: the vendor, plus _path off the native path
  std::unique_ptr<memory::SparseMemory> memory;
  std::unique_ptr<IommuLane> iommu;
  std::unique_ptr<pcie::RootComplex> root_complex;
  std::vector<std::unique_ptr<traffic::Endpoint>> endpoints;
  bool ats_stats = false;                      // the IOMMU's ATS stats are registered
  std::unique_ptr<traffic::DmaStats> totals;   // several endpoints: all of theirs, as <lane>.endpoint
  std::vector<std::string> endpoint_stats;     // each endpoint's stats prefix after <lane>., then the totals'
  sc_core::sc_event_or_list endpoint_done;     // any endpoint finished
  sc_core::sc_event go;
  std::vector<driver::DomainId> dma_domain;    // per unit: the DMA domain its endpoints use (0: none)
  uint32_t timeline_pid = 0;                   // its process on the timeline (--trace)
  std::unique_ptr<StressWorkload> stress;
  std::unique_ptr<DmaApiWorkload> dma_api;
  std::unique_ptr<JobWorkload> jobs;           // nic, storage, trace: hands the endpoints their DMAs
  common::Counter unmaps, domain_flushes;
  sc_core::sc_time traffic_start, traffic_end;
  // sim.warmup_transactions: when the lane's statistics started counting afresh, and
  // where its invalidation records and event count stood then.
  bool warmed_up = false;
  sc_core::sc_time warmup_end;
  std::vector<size_t> invalidations_from;   // per unit
  uint64_t events_from = 0;
  // Several units: the lane's figures over all of them, under the one-unit names
  // (iommu.*), so sweeps, reports and goldens read them whatever platform.iommus is.
  common::Counter all_faults, all_config_reads;
  common::Histogram all_walk_reads, all_walk_latency, all_invalidation_latency;
  std::string failure;
  bool finished = false;

  bool traffic_done() const {
    for (auto& e : endpoints)
      if (!e->done()) return false;
    return true;
  }
  uint64_t completed() const {
    uint64_t n = 0;
    for (auto& e : endpoints) n += e->completed();
    return n;
  }
};

// The workload: per lane, sets the platform up through the driver, starts the traffic, and
// keeps unmapping/invalidating until the traffic is done. The run ends when every lane has.
struct System::Impl : sc_core::sc_module {
  SC_HAS_PROCESS(Impl);
  Params p;
  std::vector<std::unique_ptr<Lane>> lanes;
  common::StatRegistry reg;
  unsigned running = 0;
  common::Timeline* timeline_ = nullptr;

  Impl(sc_core::sc_module_name name, const json& j, const Params& params, common::Timeline* timeline)
      : sc_module(name), p(params), timeline_(timeline) {
    ConfigReader root(j, "");
    for (const std::string& v : p.vendors) for (const std::string& path : p.paths) {
      // Side by side, a vendor without an accelerated path (VT-d) runs its other lanes; alone,
      // make_lane refuses it, saying why.
      if (path == kAcceleratedPath && p.vendors.size() > 1 && !has_accelerated_path(v)) {
        std::cerr << "iommusim: " << lane_name(v, path) << " is not run: " << v
                  << " has no accelerated path (docs/vmm.md, \"Guest invalidation without a trap\")\n";
        continue;
      }
      auto lane = std::make_unique<Lane>();
      Lane& l = *lane;
      l.vendor = v;
      l.path = path;
      l.name = lane_name(v, path);
      l.module = path == kNativePath ? v : v + "_" + path;
      const std::string& n = l.name;
      l.memory = std::make_unique<memory::SparseMemory>((l.module + "_memory").c_str(), p.mem);
      LaneSettings ls;
      ls.name = l.module + "_";
      ls.sim_memory = l.memory.get();
      ls.seed = p.seed;
      ls.timing = p.timing;
      ls.pools = p.pools;
      ls.endpoints = p.eps;
      ls.iommus = p.iommus;
      ls.oracle = p.oracle;
      ls.guest_ram_pa = p.guest_ram_pa;
      ls.guest_ram_bytes = p.guest_ram_bytes;
      ls.stage2_page_bytes = p.s2_page;
      ls.vm_ram_stride = p.vm_ram_stride;
      ls.vmm = p.vmm;
      ls.guest = p.guest;
      if (p.stress) {   // the stress workload's two window regions, whose pages the VMM moves
        ls.movable_gpa = p.buffer_ipa;
        ls.movable_bytes = 2 * p.stride;
      }
      l.iommu = make_lane(v, path, root.section("iommu"), root.section("driver"), root.section("traffic"), ls);
      l.iommu->bind();
      l.dma_domain.assign(l.iommu->drivers(), 0);
      l.invalidations_from.assign(l.iommu->drivers(), 0);
      if (timeline) {
        l.timeline_pid = timeline->process(n);
        for (unsigned k = 0; k < l.iommu->drivers(); ++k) l.iommu->nth_driver(k).set_timeline(*timeline, l.timeline_pid);
      }
      l.memory->register_stats(reg, n + ".memory");
      l.iommu->register_stats(reg, n);
      if (p.pcie.enabled) {
        l.root_complex = std::make_unique<pcie::RootComplex>((l.module + "_root_complex").c_str(), p.pcie.link);
        l.iommu->bind_requester(l.root_complex->to_iommu, 0);   // one IOMMU with pcie.enabled
        l.root_complex->register_stats(reg, n + ".pcie");
      }
      if (p.jobs) add_jobs(l);
      add_endpoints(l);
      reg.add(n + ".workload.unmaps", l.unmaps, "count", "strict unmap operations (PTE clear + range invalidation + sync)");
      reg.add(n + ".workload.domain_flushes", l.domain_flushes, "count", "whole-domain invalidations");
      if (p.warmup) {
        auto end = [this, &l] { end_warmup(l); };
        if (l.totals) l.totals->on_completed(p.warmup, end);
        else l.endpoints.front()->on_completed(p.warmup, end);
      }
      if (p.stress) {
        StressConfig sc;
        sc.translation = p.translation;
        sc.window_base = p.ep.window_base;
        sc.window_bytes = p.ep.window_bytes;
        sc.leaf_bytes = churn_unit(p);
        sc.mixed_leaves = p.mixed_leaves;
        sc.s2_page = p.s2_page;
        sc.guest_ram_pa = p.guest_ram_pa;
        sc.guest_ram_bytes = p.guest_ram_bytes;
        sc.buffer_ipa = p.buffer_ipa;
        sc.stride = p.stride;
        sc.seed = p.seed;
        // A virtio guest only maps and unmaps whole mappings, and its VMM moves no pages.
        sc.unmap_map_only = path == kVirtioPath;
        if (l.iommu->guest_stage1()) {
          sc.guest_stage1 = true;
          IommuLane* lane = l.iommu.get();
          sc.move_guest_page = [lane](uint64_t gpa, uint64_t pa, uint64_t bytes) {
            return lane->move_guest_page(gpa, pa, bytes);
          };
        }
        l.stress = std::make_unique<StressWorkload>(sc, driven_driver(l));
        l.stress->register_stats(reg, n + ".workload");
      }
      if (p.dma_api) add_dma_api(l);
      sc_core::sc_spawn_options opts;
      sc_core::sc_spawn([this, &l] { workload(l); }, (l.module + "_workload").c_str(), &opts);
      lanes.push_back(std::move(lane));
    }
    running = unsigned(lanes.size());
    SC_THREAD(progress);
  }

  // The lane's endpoints, each bound to the root complex or straight to the IOMMU. One
  // endpoint's stats are <lane>.endpoint.*; several have <lane>.endpoint.ep<k>.* each
  // and their totals as <lane>.endpoint.*.
  void add_endpoints(Lane& l) {
    const bool several = p.eps.size() > 1;
    if (several) l.totals = std::make_unique<traffic::DmaStats>();
    for (size_t i = 0; i < p.eps.size(); ++i) {
      const std::string k = several ? std::to_string(i) : "";
      auto e = std::make_unique<traffic::Endpoint>((l.module + "_endpoint" + k).c_str(), p.eps[i].config);
      if (l.root_complex) e->socket.bind(l.root_complex->from_devices);
      else l.iommu->bind_requester(e->socket, p.eps[i].iommu);
      e->start(l.go);
      if (l.totals) e->also_count_in(*l.totals);
      // A work queue its guest sees untranslated: the buffers the guest's own driver maps
      // the window onto, addressed by GPA (no driver maps anything for it).
      if (l.iommu->endpoint_untranslated(i)) e->set_address_map([this, &l](uint64_t iova) { return dma_target(l, iova); });
      if (l.jobs) e->set_job_source(l.jobs->source(i));
      if (timeline_) e->set_timeline(*timeline_, l.timeline_pid, "ep" + std::to_string(i));
      l.endpoint_done |= e->done_event();
      l.endpoint_stats.push_back(several ? "endpoint.ep" + k : "endpoint");
      e->register_stats(reg, l.name + "." + l.endpoint_stats.back());
      add_ats(l, *e, l.name + "." + l.endpoint_stats.back());
      l.endpoints.push_back(std::move(e));
    }
    if (l.totals) {
      l.endpoint_stats.push_back("endpoint");
      l.totals->register_stats(reg, l.name + ".endpoint");
    }
  }

  // An endpoint with ATS (docs/ats.md): its ATC on the lane's link, known to the IOMMU and
  // its driver, and its Translated DMAs reported to the oracle. A work queue of a device
  // met before (the same RID) uses that device's ATC: attached, enabled and its stats
  // registered once, under the first endpoint's name.
  void add_ats(Lane& l, traffic::Endpoint& e, const std::string& stats_prefix) {
    if (!e.atc()) return;
    if (auto* o = l.iommu->oracle()) e.set_observer(o);
    for (const auto& device : l.endpoints)
      if (device->config().requester_id == e.config().requester_id) {
        e.share_atc_of(*device);
        return;
      }
    traffic::Atc* atc = e.atc();
    if (l.root_complex) atc->set_link(&l.root_complex->link());
    l.iommu->attach_ats_device(e.config().requester_id, atc);
    l.iommu->enable_ats(e.config().requester_id);
    atc->register_stats(reg, stats_prefix + ".atc");
    if (!l.ats_stats) l.iommu->register_ats_stats(reg, l.name);
    l.ats_stats = true;
  }

  // The driver of the first endpoint: the one the single-device workloads (stress, dma_api,
  // nic, storage) and a trace (whose endpoints share an IOMMU and a VM) program.
  driver::IommuDriver& driven_driver(Lane& l) const { return l.iommu->nth_driver(l.iommu->endpoint_driver(0)); }

  // workload.mode = dma_api: the CPUs' buffers, and the endpoint's DMAs redirected into them.
  void add_dma_api(Lane& l) {
    auto* drv = dynamic_cast<driver::DriverBase*>(&driven_driver(l));
    if (!drv) throw std::runtime_error(l.name + ": workload.mode = dma_api needs a DriverBase driver");
    DmaApiWorkloadConfig c;
    c.api = p.dma.api;
    c.buffer_bytes = p.dma.buffer_bytes;
    c.window_base = p.ep.window_base;
    c.window_bytes = p.ep.window_bytes;
    // A guest's DMA API maps guest-physical buffers (its VMM backs them with guest RAM).
    c.buffer_pa = l.iommu->guest_stage1() ? p.buffer_ipa : p.guest_ram_pa + p.buffer_ipa;
    c.page_bytes = p.s1_page;
    c.interval_ns = double(p.unmap_interval_ns);
    l.dma_api = std::make_unique<DmaApiWorkload>(c, *drv);
    l.dma_api->register_stats(reg, l.name + ".dma_api");
    l.endpoints.front()->set_address_map([w = l.dma_api.get()](uint64_t a) { return w->translate(a); },
                                         [w = l.dma_api.get()](uint64_t iova) { w->dma_done(iova); });
  }

  // workload.mode = nic, storage or trace: the workload that hands the endpoints their DMAs.
  void add_jobs(Lane& l) {
    auto* drv = dynamic_cast<driver::DriverBase*>(&driven_driver(l));
    if (!drv) throw std::runtime_error(l.name + ": workload.mode = " + p.mode + " needs a DriverBase driver");
    l.jobs = make_jobs(*drv, *l.iommu);
    l.jobs->register_stats(reg, l.name);
  }

  std::unique_ptr<JobWorkload> make_jobs(driver::DriverBase& drv, const IommuLane& lane) const {
    // A guest's driver maps guest-physical buffers for its virtual device.
    const uint64_t buffer_pa = lane.guest_stage1() ? p.buffer_ipa : p.guest_ram_pa + p.buffer_ipa;
    const uint32_t rid = lane.driver_rid(p.ep.requester_id);
    if (p.mode == "trace") {
      TraceSetup t;
      t.events = &p.trace_events;
      for (const EndpointSettings& e : p.eps) {
        t.endpoints.push_back(e.config.requester_id);
        t.driver_rids.push_back(lane.driver_rid(e.config.requester_id));
      }
      t.buffer_pa = buffer_pa;
      t.page_bytes = p.s1_page;
      return std::make_unique<TraceWorkload>(t, drv);
    }
    if (p.mode == "storage") {
      StorageSetup st;
      st.storage = p.storage;
      st.api = p.dma.api;
      st.buffer_pa = buffer_pa;
      st.page_bytes = p.s1_page;
      st.seed = p.seed;
      st.rid = rid;
      st.pasid = pasid_of(p.ep);
      return std::make_unique<StorageWorkload>(st, drv);
    }
    NicSetup n;
    n.nic = p.nic;
    n.api = p.dma.api;
    n.buffer_pa = buffer_pa;
    n.page_bytes = p.s1_page;
    n.rid = rid;
    n.pasid = pasid_of(p.ep);
    return std::make_unique<NicWorkload>(n, drv);
  }

  // Where the DMA domain maps an IOVA of the window or churn region: a PA (s1), an IPA
  // (nested) or, for s2, the PA that guest RAM backs the IPA with.
  // A guest's driver (trapped, virtio) maps guest-physical addresses.
  uint64_t dma_target(const Lane& l, uint64_t iova) const {
    if (p.translation == "s2") return p.guest_ram_pa + iova;
    const uint64_t off = p.buffer_ipa + (iova - p.ep.window_base);
    return p.translation == "s1" && !l.iommu->guest_stage1() ? p.guest_ram_pa + off : off;
  }

  bool check(Lane& l, const driver::Status& s, const char* what) {
    if (s.ok) return true;
    l.failure = std::string(what) + ": " + s.error;
    sc_core::sc_stop();   // one lane failing ends the run; every lane's stats so far are kept
    return false;
  }

  // Maps the DMA window (+ churn pages) to buffers and returns false on failure.
  bool setup(Lane& l) {
    if (!check(l, l.iommu->boot(), "driver init")) return false;
    const uint32_t rid = l.iommu->driver_rid(p.eps.front().config.requester_id);
    const std::optional<uint32_t> pasid = pasid_of(p.eps.front().config);
    if (l.stress) {
      if (!check(l, l.stress->setup(rid, pasid), "stress setup")) return false;
      // Work queues of endpoint 0's device (its RID, their own PASIDs) stay on domain A.
      for (size_t i = 1; i < p.eps.size(); ++i)
        if (work_queue_of_endpoint0(i) && l.iommu->endpoint_driver(i) == l.iommu->endpoint_driver(0) &&
            !check(l, l.stress->attach_work_queue(rid, p.eps[i].config.pasid), "stress work queue attach"))
          return false;
      // Several VMs: the other VMs' devices get static DMA domains from their own guests.
      for (unsigned k = 0; k < l.iommu->drivers(); ++k)
        if (k != l.iommu->endpoint_driver(0) && drives_endpoints(l, k) && !setup_unit(l, k)) return false;
      return true;
    }
    if (l.dma_api) return check(l, l.dma_api->setup(rid, pasid), "dma_api setup");
    if (l.jobs) return check(l, l.jobs->setup(), (p.mode + " setup").c_str());
    if (p.translation == "bypass") {
      if (!check(l, l.iommu->bypass_all(), "bypass")) return false;
      if (auto* o = l.iommu->oracle()) o->set_bypass(true);
      return true;
    }
    // Each driver with endpoints gets the DMA domain (its own, as Linux attaches one domain
    // to devices on several IOMMUs and invalidates each; each VM's guest its own).
    for (unsigned k = 0; k < l.iommu->drivers(); ++k)
      if (drives_endpoints(l, k) && !setup_unit(l, k)) return false;
    return true;
  }
  // Endpoint i (> 0) is a work queue of endpoint 0's device: the same RID, a PASID of its own.
  bool work_queue_of_endpoint0(size_t i) const {
    return p.eps[i].config.requester_id == p.eps[0].config.requester_id && p.eps[i].config.pasid_valid;
  }
  bool drives_endpoints(const Lane& l, unsigned k) const {
    for (size_t i = 0; i < p.eps.size(); ++i)
      if (l.iommu->endpoint_driver(i) == k && !l.iommu->endpoint_untranslated(i)) return true;
    return false;
  }

  // Driver k's DMA domain, mapped and attached to the endpoints it programs.
  bool setup_unit(Lane& l, unsigned k) {
    using driver::DomainKind;
    driver::IommuDriver& drv = l.iommu->nth_driver(k);
    std::string why;
    const uint64_t span = p.ep.window_bytes + churn_units(p) * churn_unit(p);
    // A guest's driver builds stage 1 only: its VMM set stage 2 up at boot.
    if (p.translation == "s2" || (p.translation == "nested" && !l.iommu->guest_stage1())) {
      auto s2 = drv.create_domain(DomainKind::Stage2, std::nullopt, &why);
      if (!s2) return check(l, driver::Status::fail(why), "create stage-2 domain");
      // The VMM maps all of guest RAM: IPA [0, size) -> PA guest_ram_pa.
      if (!check(l, drv.map(*s2, 0, p.guest_ram_pa, p.guest_ram_bytes, {}, p.s2_page), "map guest RAM")) return false;
      if (p.translation == "s2") {
        // Device IOVA = IPA: map the window onto the buffers directly through stage 2.
        l.dma_domain[k] = *s2;
        return attach_endpoints(l, k);
      }
      auto s1 = drv.create_domain(DomainKind::Nested, *s2, &why);
      if (!s1) return check(l, driver::Status::fail(why), "create nested domain");
      if (!check(l, drv.map(*s1, p.ep.window_base, dma_target(l, p.ep.window_base), span, {}, p.s1_page), "map DMA window"))
        return false;
      l.dma_domain[k] = *s1;
      return attach_endpoints(l, k);
    }
    auto s1 = drv.create_domain(DomainKind::Stage1, std::nullopt, &why);
    if (!s1) return check(l, driver::Status::fail(why), "create stage-1 domain");
    if (!check(l, drv.map(*s1, p.ep.window_base, dma_target(l, p.ep.window_base), span, {}, p.s1_page), "map DMA window"))
      return false;
    l.dma_domain[k] = *s1;
    return attach_endpoints(l, k);
  }

  // The lane's statistics count afresh from here, except the oracle's, which judge every DMA.
  void end_warmup(Lane& l) {
    reg.reset(l.name + ".", {l.name + ".oracle."});
    l.warmed_up = true;
    l.warmup_end = sc_core::sc_time_stamp();
    for (unsigned k = 0; k < l.iommu->drivers(); ++k)
      l.invalidations_from[k] = l.iommu->nth_driver(k).invalidations().records().size();
    l.events_from = l.iommu->events_recorded();
  }

  static std::optional<uint32_t> pasid_of(const traffic::EndpointConfig& e) {
    return e.pasid_valid ? std::optional<uint32_t>(e.pasid) : std::nullopt;
  }

  // Every endpoint driver k programs to its DMA domain through its RID (and PASID). The same
  // domain is also attached through PASIDs 1..N of each device (an SVA-like fan-out):
  // vendors that tag entries by PASID must invalidate each one.
  bool attach_endpoints(Lane& l, unsigned k) {
    driver::IommuDriver& drv = l.iommu->nth_driver(k);
    for (size_t i = 0; i < p.eps.size(); ++i) {
      const EndpointSettings& e = p.eps[i];
      if (l.iommu->endpoint_driver(i) != k || l.iommu->endpoint_untranslated(i)) continue;
      const uint32_t rid = l.iommu->endpoint_driver_rid(i, e.config.requester_id);
      if (!check(l, drv.attach(rid, l.iommu->endpoint_driver_pasid(i, pasid_of(e.config)), l.dma_domain[k]), "attach"))
        return false;
      for (uint32_t pasid = 1; pasid <= p.extra_pasids; ++pasid)
        if (!check(l, drv.attach(rid, pasid, l.dma_domain[k]), "attach extra PASID")) return false;
    }
    return true;
  }

  void workload(Lane& l) {
    if (!setup(l)) return;
    const bool churn = std::any_of(l.dma_domain.begin(), l.dma_domain.end(), [](driver::DomainId d) { return d != 0; });
    l.traffic_start = sc_core::sc_time_stamp();
    l.go.notify(sc_core::SC_ZERO_TIME);
    // The churn region follows the DMA window; it is unmapped and remapped one leaf at a
    // time (a DMA buffer's life cycle), so the unit is the leaf size of the domain's tables.
    const uint64_t unit = churn_unit(p);
    const uint64_t churn_iova = p.ep.window_base + p.ep.window_bytes;
    const uint64_t units = churn_units(p);
    uint64_t op = 0, events_drained_at = 0;
    if (l.dma_api && p.unmap_interval_ns) l.dma_api->start();
    if (l.jobs) {
      l.jobs->run();   // returns once its traffic is over; the endpoints' slots then leave
      if (!l.jobs->failure().empty() && !check(l, driver::Status::fail(l.jobs->failure()), p.mode.c_str())) return;
    }
    while (!l.traffic_done()) {
      if (p.unmap_interval_ns == 0 || (!churn && !l.stress)) { sc_core::wait(l.endpoint_done); continue; }
      sc_core::wait(sc_core::sc_time(double(p.unmap_interval_ns), sc_core::SC_NS), l.endpoint_done);
      if (l.traffic_done()) break;
      ++op;
      // Stands in for the fault interrupt: the driver's handler runs only when records arrive.
      if (l.iommu->events_recorded() != events_drained_at) {
        events_drained_at = l.iommu->events_recorded();
        l.iommu->raise_event_interrupt();
      }
      if (l.stress) {
        std::string what;
        const driver::Status st = l.stress->step(what);
        if (!check(l, st, ("stress " + what).c_str())) return;
        continue;
      }
      // Each driver's DMA domain in turn: with several IOMMUs (or VMs), one operation is one per driver.
      for (unsigned k = 0; k < l.iommu->drivers(); ++k) {
        const driver::DomainId d = l.dma_domain[k];
        if (!d) continue;
        driver::IommuDriver& drv = l.iommu->nth_driver(k);
        if (p.domain_every && op % p.domain_every == 0) {
          if (!check(l, drv.invalidate_domain(d), "invalidate_domain")) return;
          l.domain_flushes.inc();
          continue;
        }
        const uint64_t iova = churn_iova + (op % units) * unit;
        if (!check(l, drv.unmap(d, iova, unit), "unmap")) return;
        l.unmaps.inc();
        if (!check(l, drv.map(d, iova, dma_target(l, iova), unit, {}, unit), "remap")) return;
      }
    }
    if (l.dma_api) {
      l.dma_api->stop();
      l.dma_api->join();
      if (const std::string f = l.dma_api->failure(); !f.empty() && !check(l, driver::Status::fail(f), "dma_api")) return;
    }
    l.traffic_end = sc_core::sc_time_stamp();
    if (p.vmm.teardown_vm && nested_guest_path(l.path) &&
        !check(l, l.iommu->teardown_vm(*p.vmm.teardown_vm), "vmm.teardown_vm"))
      return;
    l.iommu->drain_events();
    l.finished = true;
    if (--running == 0) sc_core::sc_stop();
  }

  void progress() {
    if (!p.progress || !isatty(STDERR_FILENO)) return;
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    uint64_t total = 0;
    for (const EndpointSettings& e : p.eps) total += e.config.total_transactions * lanes.size();
    for (;;) {
      sc_core::wait(sc_core::sc_time(20, sc_core::SC_US));
      auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(500)) continue;
      last = now;
      uint64_t done = 0;
      for (auto& l : lanes) done += l->completed();
      const std::string line = progress_text(done, total, std::chrono::duration<double>(now - start).count(), "DMAs");
      std::fprintf(stderr, "\r  %s, at %.1f us simulated\x1b[K", line.c_str(), sc_core::sc_time_stamp().to_seconds() * 1e6);
      std::fflush(stderr);
    }
  }
};

System::System(const json& cfg, common::Timeline* timeline) {
  Params p = read_params(cfg);
  impl_ = std::make_unique<Impl>("system", cfg, p, timeline);
}

System::~System() = default;

common::StatRegistry& System::stats() { return impl_->reg; }

nlohmann::json System::invalidation_records() const {
  json j = json::object();
  // Several IOMMUs: each unit's records in turn.
  for (auto& l : impl_->lanes) {
    json all = json::array();
    for (unsigned k = 0; k < l->iommu->drivers(); ++k) {
      json records = l->iommu->nth_driver(k).invalidations().to_json();
      records.erase(records.begin(), records.begin() + std::ptrdiff_t(l->invalidations_from[k]));
      for (json& r : records) all.push_back(std::move(r));
    }
    j[l->name] = std::move(all);
  }
  return j;
}

namespace {
std::string fmt(double v, int prec = 1) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}

// A table with one column per vendor.
class SideBySide {
 public:
  explicit SideBySide(const std::vector<std::string>& vendors) { row("", vendors); }
  void row(const std::string& label, const std::vector<std::string>& cells) { rows_.push_back({label, cells}); }
  void note(const std::string& text) { rows_.push_back({"\x01" + text, {}}); }
  std::string str() const {
    size_t lw = 0, cw = 8;
    for (auto& r : rows_) {
      if (r.first[0] == '\x01') continue;
      lw = std::max(lw, r.first.size());
      for (auto& c : r.second) cw = std::max(cw, c.size());
    }
    std::ostringstream o;
    for (auto& r : rows_) {
      if (!r.first.empty() && r.first[0] == '\x01') { o << "  " << r.first.substr(1) << "\n"; continue; }
      o << "  " << std::left << std::setw(int(lw)) << r.first;
      for (auto& c : r.second) o << "  " << std::right << std::setw(int(cw)) << c;
      o << "\n";
    }
    return o.str();
  }
 private:
  std::vector<std::pair<std::string, std::vector<std::string>>> rows_;
};
}  // namespace

RunResult System::run() {
  Impl& s = *impl_;
  sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);   // "stopped by user"
  const auto host_start = std::chrono::steady_clock::now();
  // sim.max_sim_time_us bounds simulated time; without it a run also ends when it runs out
  // of events (every process waiting). Either way a lane that did not finish fails the run.
  if (s.p.max_sim_time_us > 0)
    sc_core::sc_start(sc_core::sc_time(s.p.max_sim_time_us, sc_core::SC_US));
  else
    sc_core::sc_start();
  const double host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - host_start).count();
  if (s.p.progress && isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\x1b[K");

  RunResult r;
  std::vector<std::string> vendors;
  r.violation_records = json::array();
  for (auto& l : s.lanes) {
    if (common::CorrectnessOracle* o = l->iommu->oracle()) {
      o->finish();
      r.violations += o->violations();
      for (auto& v : o->violations_json()) r.violation_records.push_back(v);
    }
  }
  bool lane_failed = false;
  for (auto& l : s.lanes) lane_failed |= !l->failure.empty();
  const sc_core::sc_time stopped_at = sc_core::sc_time_stamp();
  const std::string at_us = fmt(stopped_at.to_seconds() * 1e6);
  for (auto& l : s.lanes) {
    if (!l->finished && l->failure.empty() && !lane_failed) {
      if (s.p.max_sim_time_us > 0 && stopped_at >= sc_core::sc_time(s.p.max_sim_time_us, sc_core::SC_US))
        l->failure = "did not finish: simulated time reached sim.max_sim_time_us (" + fmt(s.p.max_sim_time_us) + " us)";
      else
        l->failure = "did not finish: the simulation ran out of events at " + at_us + " us";
      l->failure += " after " + std::to_string(l->completed()) + " DMAs";
    }
    // A lane stopped during its traffic: its traffic time runs to the stop.
    if (!l->finished && l->traffic_start != sc_core::SC_ZERO_TIME && l->traffic_end == sc_core::SC_ZERO_TIME)
      l->traffic_end = stopped_at;
    vendors.push_back(l->name);
    if (!l->failure.empty()) {
      r.ok = false;
      r.error += (r.error.empty() ? "" : "; ") + l->name + ": " + l->failure;
    }
  }
  std::ostringstream o;
  o << "iommusim run: " << (vendors.size() > 1 ? "side by side on identical traffic, " : "");
  for (size_t i = 0; i < vendors.size(); ++i) o << (i ? ", " : "") << vendors[i];
  o << "; translation " << s.p.translation << ", seed " << s.p.seed << ", " << fmt(host_s, 2) << " s host\n";
  if (!r.ok) o << "  RUN FAILED: " << r.error << " (statistics below cover the run up to that point)\n";

  SideBySide t(vendors);
  auto per_lane = [&](const std::string& label, auto&& cell) {
    std::vector<std::string> cells;
    for (auto& l : s.lanes) cells.push_back(cell(*l));
    t.row(label, cells);
  };
  // Every figure is read through the registry, so it counts from the end of the lane's
  // warm-up (sim.warmup_transactions), like stats.json; the oracle's cover the whole run.
  auto count = [&](const Lane& l, const std::string& stat) { return s.reg.counter(l.name + "." + stat); };
  auto hist = [&](const Lane& l, const std::string& stat) { return s.reg.histogram(l.name + "." + stat); };
  auto ns = [](double ps) { return fmt(ps / 1000.0); };
  auto measured_from = [](const Lane& l) { return l.warmed_up ? l.warmup_end : l.traffic_start; };
  auto sim_ns = [&](const Lane& l) { return (l.traffic_end - measured_from(l)).to_seconds() * 1e9; };
  // A stat of every IOMMU of the lane (<base>, or <base><k> with several): summed, merged.
  // A unit may lack one (a trapped lane's unit without the VM's devices has no guest driver).
  auto ucount = [&](const Lane& l, const std::string& base, const std::string& stat) {
    uint64_t n = 0;
    for (unsigned k = 0, K = l.iommu->units(); k < K; ++k) {
      const std::string name = unit_name(base, k, K) + "." + stat;
      if (s.reg.find_counter(l.name + "." + name)) n += count(l, name);
    }
    return n;
  };
  // "driver": every driver the workload programs (a VM's guest driver per unit with several VMs).
  auto uhist = [&](const Lane& l, const std::string& base, const std::string& stat) {
    common::Histogram h;
    const bool drivers = base == "driver";
    for (unsigned k = 0, K = drivers ? l.iommu->drivers() : l.iommu->units(); k < K; ++k) {
      const std::string name = (drivers ? l.iommu->driver_stats_name(k) : unit_name(base, k, K)) + "." + stat;
      if (s.reg.find_histogram(l.name + "." + name)) h.add(hist(l, name));
    }
    return h;
  };
  auto ratio = [](uint64_t hits, uint64_t misses) { return hits + misses ? double(hits) / double(hits + misses) : 0.0; };
  auto hit_rate = [&](const Lane& l, const std::string& cache) {
    return ratio(ucount(l, "iommu", cache + ".hits"), ucount(l, "iommu", cache + ".misses"));
  };
  for (auto& lp : s.lanes) {
    const Lane& l = *lp;
    if (const unsigned K = l.iommu->units(); K > 1) {
      const std::string all = l.name + ".iommu.", of_all = " (all " + std::to_string(K) + " IOMMUs)";
      for (auto& c : l.iommu->caches())
        s.reg.set_value(all + c.name + ".hit_rate", hit_rate(l, c.name), "ratio", c.name + " hits / lookups" + of_all);
      lp->all_faults.inc(ucount(l, "iommu", "faults"));
      lp->all_config_reads.inc(ucount(l, "iommu", "config_reads"));
      lp->all_walk_reads = uhist(l, "iommu", "walk_reads");
      lp->all_walk_latency = uhist(l, "iommu", "walk_latency");
      s.reg.add(all + "faults", l.all_faults, "count", "translation faults" + of_all);
      s.reg.add(all + "config_reads", l.all_config_reads, "count", "configuration structure reads" + of_all);
      s.reg.add(all + "walk_reads", l.all_walk_reads, "reads", "page-table reads per IOTLB-miss walk" + of_all);
      s.reg.add(all + "walk_latency", l.all_walk_latency, "ns", "IOTLB-miss walk time incl. walk-cache probes" + of_all,
                1e-3);
    }
    // Several drivers the workload programs (a unit's each, or a VM's guest driver per unit):
    // their invalidations as one, under the one-driver name.
    if (const unsigned n = l.iommu->drivers(); n > 1) {
      lp->all_invalidation_latency = uhist(l, "driver", "invalidation.latency");
      s.reg.add(l.name + ".driver.invalidation.latency", l.all_invalidation_latency, "ns",
                "end-to-end invalidation latency seen by the drivers (all " + std::to_string(n) + ")", 1e-3);
    }
    const double t_ns = sim_ns(l);
    s.reg.set_value(l.name + ".run.simulated_traffic_time", t_ns, "ns",
                    "simulated time from traffic start (or the end of the warm-up) to its end");
    s.reg.set_value(l.name + ".run.dma_throughput", t_ns > 0 ? double(count(l, "endpoint.transactions")) / t_ns * 1e3 : 0,
                    "M DMA/s", "completed DMAs per simulated microsecond");
    if (l.dma_api)
      s.reg.set_value(l.name + ".run.map_unmap_throughput",
                      t_ns > 0 ? double(count(l, "dma_api.maps") + count(l, "dma_api.unmaps")) / t_ns * 1e3 : 0,
                      "M calls/s", "workload.mode = dma_api: dma_map and dma_unmap calls per simulated microsecond");
    if (l.warmed_up)
      s.reg.set_value(l.name + ".run.warmup_end", measured_from(l).to_seconds() * 1e9, "ns",
                      "when the lane's warm-up (sim.warmup_transactions) ended: its other stats, except the oracle's, count from here");
    for (unsigned k = 0, K = l.iommu->units(); k < K; ++k)
      for (auto& c : l.iommu->caches()) {
        const std::string unit = l.name + "." + unit_name("iommu", k, K) + "." + c.name;
        s.reg.set_value(unit + ".hit_rate", ratio(s.reg.counter(unit + ".hits"), s.reg.counter(unit + ".misses")), "ratio",
                        c.name + " hits / lookups");
      }
    l.iommu->set_end_values(s.reg, l.name);
    // Bytes per nanosecond times 8: Gb/s.
    auto gbps = [&](const std::string& stat) { return t_ns > 0 ? double(count(l, stat)) * 8 / t_ns : 0; };
    for (const std::string& e : l.endpoint_stats) {
      s.reg.set_value(l.name + "." + e + ".up_bandwidth", gbps(e + ".up_bytes"), "Gb/s",
                      "data successful writes moved from the device to memory, over the traffic time");
      s.reg.set_value(l.name + "." + e + ".down_bandwidth", gbps(e + ".down_bytes"), "Gb/s",
                      "data successful reads moved from memory to the device, over the traffic time");
    }
    if (l.root_complex) {
      for (const std::string dir : {"up", "down"}) {
        const std::string pre = l.name + ".pcie." + dir;
        s.reg.set_value(pre + ".bandwidth", gbps("pcie." + dir + ".payload_bytes"), "Gb/s",
                        "TLP payload carried " + dir + "stream, over the traffic time");
        const double busy_ns = double(pcie::serialise_ps(s.p.pcie.link, count(l, "pcie." + dir + ".wire_bytes"))) / 1000;
        s.reg.set_value(pre + ".utilisation", t_ns > 0 ? busy_ns / t_ns : 0, "ratio",
                        "share of the traffic time the " + dir + "stream wire was busy (TLPs and DLLPs)");
      }
    }
  }
  for (auto& l : s.lanes)
    if (l->jobs) l->jobs->report(s.reg, l->name);
  r.stats = s.reg.to_json();

  per_lane("DMAs completed", [&](const Lane& l) { return std::to_string(count(l, "endpoint.transactions")); });
  per_lane("  faulted / errors", [&](const Lane& l) {
    return std::to_string(count(l, "endpoint.faults")) + " / " + std::to_string(count(l, "endpoint.errors"));
  });
  per_lane("simulated time (us)", [&](const Lane& l) { return fmt(sim_ns(l) / 1000.0); });
  if (s.p.pcie.enabled) {
    auto value = [&](const Lane& l, const std::string& stat) { return s.reg.value(l.name + "." + stat); };
    per_lane("PCIe payload up / down (Gb/s)", [&](const Lane& l) {
      return fmt(value(l, "pcie.up.bandwidth"), 2) + " / " + fmt(value(l, "pcie.down.bandwidth"), 2);
    });
    per_lane("  wire busy up / down", [&](const Lane& l) {
      return fmt(100 * value(l, "pcie.up.utilisation")) + "% / " + fmt(100 * value(l, "pcie.down.utilisation")) + "%";
    });
    per_lane("DMA latency mean (ns)", [&](const Lane& l) { return ns(hist(l, "endpoint.latency").mean()); });
    per_lane("  link / translation / memory", [&](const Lane& l) {
      return ns(hist(l, "endpoint.link_latency").mean()) + " / " + ns(hist(l, "endpoint.translation_latency").mean()) +
             " / " + ns(hist(l, "endpoint.memory_latency").mean());
    });
  }
  per_lane("IOTLB hit rate", [&](const Lane& l) {
    const std::string iotlb = l.iommu->caches().front().name;
    return ucount(l, "iommu", iotlb + ".hits") + ucount(l, "iommu", iotlb + ".misses")
               ? fmt(100.0 * hit_rate(l, iotlb)) + "%"
               : std::string("-");
  });
  per_lane("table reads/walk mean", [&](const Lane& l) { return fmt(uhist(l, "iommu", "walk_reads").mean(), 2); });
  per_lane("  p50 / p99 / max", [&](const Lane& l) {
    const auto w = uhist(l, "iommu", "walk_reads");
    return fmt(w.percentile(0.5), 0) + " / " + fmt(w.percentile(0.99), 0) + " / " + std::to_string(w.max());
  });
  per_lane("walks", [&](const Lane& l) { return std::to_string(uhist(l, "iommu", "walk_reads").count()); });
  // Config structures themselves (STE/CD, root/context/PASID, DTE/GCR3), and apart the
  // stage-2 reads that locate them at guest addresses: one definition for every vendor.
  per_lane("config reads", [&](const Lane& l) { return std::to_string(ucount(l, "iommu", "config_reads")); });
  per_lane("  stage-2 reads locating them", [&](const Lane& l) { return std::to_string(ucount(l, "iommu", "config_table_reads")); });
  // Percentiles are bucket upper bounds: the resolution row says how far above the true
  // value they may be (0: exact).
  auto latency_rows = [&](const std::string& indent, const std::string& what, const std::string& base,
                          const std::string& stat) {
    per_lane(indent + what + " p50 (ns)", [&](const Lane& l) { return ns(uhist(l, base, stat).percentile(0.5)); });
    per_lane(indent + what + " p99 (ns)", [&](const Lane& l) { return ns(uhist(l, base, stat).percentile(0.99)); });
    per_lane(indent + "  resolution (ns)", [&](const Lane& l) { return ns(uhist(l, base, stat).resolution({0.5, 0.99})); });
  };
  latency_rows("", "walk latency", "iommu", "walk_latency");
  per_lane("invalidations", [&](const Lane& l) {
    const std::string n = std::to_string(uhist(l, "driver", "invalidation.latency").count());
    // What caused them: the DMA API's unmaps (strict: one each; lazy: one per flush of a
    // queue), a trace's unmaps, or the churn loop's unmaps + domain flushes.
    for (const char* unmaps : {"dma_api.unmaps", "trace.unmaps"})
      if (s.reg.find_counter(l.name + "." + unmaps)) return n + " (" + std::to_string(count(l, unmaps)) + " unmaps)";
    return n + " (" + std::to_string(count(l, "workload.unmaps")) + "+" + std::to_string(count(l, "workload.domain_flushes")) + ")";
  });
  latency_rows("  ", "latency", "driver", "invalidation.latency");
  // Mean breakdown over the kept records of every IOMMU's driver: the parts add up to the mean total.
  auto records = [](const Lane& l) {
    std::vector<const driver::InvalidationRecord*> kept;
    for (unsigned k = 0; k < l.iommu->drivers(); ++k) {
      const auto& all = l.iommu->nth_driver(k).invalidations().records();
      for (auto rec = all.begin() + std::ptrdiff_t(l.invalidations_from[k]); rec != all.end(); ++rec) kept.push_back(&*rec);
    }
    return kept;
  };
  // The trapped path's parts are rows only when a trapped lane runs.
  const bool trapped = s.p.has_nested_guest() || s.p.has_path(kVirtioPath);
  const char* parts[] = {"software", "lock", "trap", "vmm", "host_kernel", "host_queue", "return",
                         "queueing", "fetch", "execution", "atc", "sync"};
  for (int k = 0; k < 12; ++k) {
    if (!trapped && k >= 2 && k <= 6) continue;
    per_lane(std::string("  mean ") + parts[k] + " (ns)", [&](const Lane& l) {
      const auto kept = records(l);
      if (kept.empty()) return std::string("-");
      double sum = 0;
      for (const driver::InvalidationRecord* rec : kept) {
        const uint64_t v[] = {rec->software_ps,   rec->lock_ps,       rec->trap_ps,     rec->vmm_ps,
                              rec->host_kernel_ps, rec->host_queue_ps, rec->return_ps,   rec->queueing_ps,
                              rec->fetch_ps,       rec->execution_ps,  rec->atc_ps,      rec->sync_ps};
        sum += double(v[k]);
      }
      return ns(sum / double(kept.size()));
    });
  }
  per_lane("  commands per domain flush", [&](const Lane& l) {
    for (const driver::InvalidationRecord* rec : records(l))
      if (rec->op == "invalidate_domain") return std::to_string(rec->commands);
    return std::string("-");
  });
  per_lane("events recorded", [](const Lane& l) { return std::to_string(l.iommu->events_recorded() - l.events_from); });
  per_lane("oracle: DMAs checked", [](const Lane& l) {
    auto* o = l.iommu->oracle();
    return o ? std::to_string(o->checked()) : std::string("off");
  });
  per_lane("  permitted stale / violations", [](const Lane& l) {
    auto* o = l.iommu->oracle();
    return o ? std::to_string(o->permitted_stale()) + " / " + std::to_string(o->violations()) : std::string("-");
  });
  for (auto& l : s.lanes) {
    std::string line = l->name + " cache hit rates:";
    for (auto& c : l->iommu->caches()) {
      const uint64_t n = ucount(*l, "iommu", c.name + ".hits") + ucount(*l, "iommu", c.name + ".misses");
      line += " " + c.name + " " + (n ? fmt(100.0 * hit_rate(*l, c.name)) + "%" : std::string("-"));
    }
    t.note(line);
  }
  if (s.p.warmup) {
    std::string line = "warm-up: the first " + std::to_string(s.p.warmup) +
                       " DMAs of each lane are not counted above (the oracle's counts cover every DMA)";
    for (auto& l : s.lanes)
      if (!l->warmed_up) line += "; " + l->name + " never finished its warm-up: its figures cover the whole run";
    t.note(line);
  }
  t.note("percentiles: nearest rank, exact below 64 (ps, reads), else a bucket's upper bound at most 3.2% high");
  o << t.str();
  r.summary = o.str();
  return r;
}

json write_outputs(const std::string& dir, const json& config, const RunResult& r, const json& invalidations) {
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(std::filesystem::path(dir) / name);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + (std::filesystem::path(dir) / name).string());
  };
  write("config.resolved.json", config.dump(2) + "\n");
  json stats{{"ok", r.ok}, {"error", r.error}, {"stats", r.stats}};
  write("stats.json", stats.dump(2) + "\n");
  write("invalidations.json", invalidations.dump(1) + "\n");
  write("summary.txt", r.summary);
  if (r.violations) write("violations.json", json{{"violations", r.violations}, {"first", r.violation_records}}.dump(2) + "\n");
  return stats;
}

}  // namespace iommusim::platforms
