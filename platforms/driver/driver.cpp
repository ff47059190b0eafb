#include "platforms/driver/driver.h"

#include <nlohmann/json.hpp>

namespace iommusim::driver {

std::string validate(const DriverTiming& t) {
  if (t.cpu_mhz <= 0) return "cpu_mhz must be positive";
  if (t.poll_interval_ns <= 0) return "poll_interval_ns must be positive";
  if (t.sync_timeout_us <= 0) return "sync_timeout_us must be positive";
  if (t.mmio_read_ns < 0 || t.mmio_write_ns < 0) return "MMIO latencies must not be negative";
  return {};
}

void InvalidationLog::add(const InvalidationRecord& r) {
  total_.record(r.total_ps);
  software_.record(r.software_ps);
  lock_.record(r.lock_ps);
  queueing_.record(r.queueing_ps);
  fetch_.record(r.fetch_ps);
  execution_.record(r.execution_ps);
  atc_.record(r.atc_ps);
  sync_.record(r.sync_ps);
  commands_.record(r.commands);
  if (trapped_parts_) {
    trap_.record(r.trap_ps);
    vmm_.record(r.vmm_ps);
    host_kernel_.record(r.host_kernel_ps);
    host_queue_.record(r.host_queue_ps);
    return_.record(r.return_ps);
  }
  if (records_.size() < keep_) records_.push_back(r);
  else dropped_records_.inc();
}

void InvalidationLog::register_stats(common::StatRegistry& reg, const std::string& p) const {
  reg.add(p + ".latency", total_, "ns", "end-to-end invalidation latency seen by the driver", 1e-3);
  reg.add(p + ".software", software_, "ns", "driver time: build commands, write queue, ring doorbell", 1e-3);
  reg.add(p + ".lock", lock_, "ns", "waiting for other CPUs: the queue lock, or the doorbell of a shared batch", 1e-3);
  reg.add(p + ".queueing", queueing_, "ns", "doorbell until the IOMMU starts fetching the commands", 1e-3);
  reg.add(p + ".fetch", fetch_, "ns", "IOMMU reads of the queue entries", 1e-3);
  reg.add(p + ".execution", execution_, "ns", "IOMMU execution of the invalidation commands", 1e-3);
  reg.add(p + ".atc", atc_, "ns",
          "the barrier's wait for device ATC invalidation completions (ATS), beyond the rest of its work", 1e-3);
  reg.add(p + ".sync", sync_, "ns", "completion barrier and its detection by the driver", 1e-3);
  reg.add(p + ".commands", commands_, "commands", "queue entries per invalidation incl. the barrier");
  reg.add(p + ".records_dropped", dropped_records_, "count", "records not kept in invalidations.json (limit reached)");
  if (!trapped_parts_) return;
  reg.add(p + ".trap", trap_, "ns", "VM exit to the VMM's handler of the vIOMMU doorbell", 1e-3);
  reg.add(p + ".vmm", vmm_, "ns", "VMM: read, check and translate the guest's commands; complete its sync", 1e-3);
  reg.add(p + ".host_kernel", host_kernel_, "ns", "ioctl, iommufd and the host driver's software", 1e-3);
  reg.add(p + ".host_queue", host_queue_, "ns", "host IOMMU: queueing, fetch, execution and sync of the forwarded commands",
          1e-3);
  reg.add(p + ".return", return_, "ns", "VM entry back to the guest", 1e-3);
}

nlohmann::json InvalidationLog::to_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (auto& r : records_) {
    a.push_back({{"op", r.op}, {"start_ns", r.start_ps / 1000.0}, {"commands", r.commands},
                 {"total_ns", r.total_ps / 1000.0}, {"software_ns", r.software_ps / 1000.0}, {"lock_ns", r.lock_ps / 1000.0},
                 {"queueing_ns", r.queueing_ps / 1000.0}, {"fetch_ns", r.fetch_ps / 1000.0},
                 {"execution_ns", r.execution_ps / 1000.0}, {"atc_ns", r.atc_ps / 1000.0},
                 {"sync_ns", r.sync_ps / 1000.0}});
    if (!trapped_parts_) continue;
    nlohmann::json& j = a.back();
    j["trap_ns"] = r.trap_ps / 1000.0;
    j["vmm_ns"] = r.vmm_ps / 1000.0;
    j["host_kernel_ns"] = r.host_kernel_ps / 1000.0;
    j["host_queue_ns"] = r.host_queue_ps / 1000.0;
    j["return_ns"] = r.return_ps / 1000.0;
  }
  return a;
}

}  // namespace iommusim::driver
