#include "platforms/vmm_keys.h"

#include <algorithm>
#include <iterator>

namespace iommusim::platforms {

namespace {
// One element of vmm.assign. Every key but pasid is required: an assignment names its device.
VmAssignment read_assignment(const nlohmann::json& j, const std::string& where) {
  const ConfigReader r(j, where);
  if (!j.is_object()) r.fail_here("expected an object {endpoint, vm, virt_id, pasid?}");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "endpoint" && it.key() != "vm" && it.key() != "virt_id" && it.key() != "pasid")
      r.fail(it.key(), "unknown key (an assignment has endpoint, vm, virt_id and pasid)");
  VmAssignment a;
  a.endpoint = unsigned(r.integer("endpoint", 0, 1023));
  a.vm = unsigned(r.integer("vm", 0, kMaxVms - 1));
  a.virt_id = r.integer("virt_id", 0, 0xFFFF);
  // PASID 0 is IOMMU_NO_PASID, the RID's own: iommufd refuses to attach it as a PASID.
  if (j.contains("pasid")) a.pasid = uint32_t(r.integer("pasid", 1, (1u << 20) - 1));
  return a;
}

void read_assign(const ConfigReader& r, VmmSettings& v) {
  const nlohmann::json& list = r.list("assign");
  v.assign.clear();
  for (size_t i = 0; i < list.size(); ++i)
    v.assign.push_back(read_assignment(list[i], r.path("assign") + "[" + std::to_string(i) + "]"));
}

// vmm.paths: each path once, in the order of kPaths (the order of the lanes and their stats).
void read_paths(const ConfigReader& r, VmmSettings& v) {
  const std::string text = r.string("paths");
  std::vector<bool> seen(std::size(kPaths), false);
  for (size_t pos = 0; pos <= text.size();) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string word = text.substr(pos, comma - pos);
    pos = comma + 1;
    const auto it = std::find_if(std::begin(kPaths), std::end(kPaths), [&](const char* p) { return word == p; });
    if (it == std::end(kPaths))
      r.fail("paths", "unknown path '" + word + "' (a comma list of native, trapped, accelerated, virtio)");
    const size_t i = size_t(it - std::begin(kPaths));
    if (seen[i]) r.fail("paths", "'" + word + "' is listed twice");
    if (std::find(seen.begin() + i, seen.end(), true) != seen.end())
      r.fail("paths", "list the paths in the order native, trapped, accelerated, virtio");
    seen[i] = true;
  }
  v.paths = text;
}

nlohmann::json write_assign(const VmmSettings& v) {
  nlohmann::json list = nlohmann::json::array();
  for (const VmAssignment& a : v.assign) {
    nlohmann::json e = {{"endpoint", a.endpoint}, {"vm", a.vm}, {"virt_id", a.virt_id}};
    if (a.pasid) e["pasid"] = *a.pasid;
    list.push_back(e);
  }
  return list;
}

// What vmm.assign must say whatever the endpoints and vendor: each VM has a device, a VM's
// virtual IDs are its own, a device (or one PASID of it) goes to one VM.
std::string check_assign(const VmmSettings& v) {
  if (v.assign.empty()) return v.vms > 1 ? "with vmm.vms above 1, say which VM owns each endpoint" : "";
  auto at = [](size_t i) { return "[" + std::to_string(i) + "] "; };
  for (size_t i = 0; i < v.assign.size(); ++i) {
    const VmAssignment& a = v.assign[i];
    if (a.vm >= v.vms)
      return at(i) + "vm " + std::to_string(a.vm) + " does not exist (vmm.vms = " + std::to_string(v.vms) + ")";
    for (size_t j = 0; j < i; ++j) {
      const VmAssignment& b = v.assign[j];
      if (b.endpoint == a.endpoint && (!a.pasid || !b.pasid))
        return at(i) + "endpoint " + std::to_string(a.endpoint) + " is already assigned whole by [" +
               std::to_string(j) + "] (a RID goes to one VM)";
      if (b.endpoint == a.endpoint && *a.pasid == *b.pasid)
        return at(i) + "endpoint " + std::to_string(a.endpoint) + " PASID " + std::to_string(*a.pasid) +
               " is already assigned by [" + std::to_string(j) + "]";
      if (b.vm == a.vm && b.virt_id == a.virt_id)
        return at(i) + "virt_id " + std::to_string(a.virt_id) + " is already VM " + std::to_string(a.vm) +
               "'s device [" + std::to_string(j) + "] (a VM's virtual IDs are distinct)";
    }
  }
  for (unsigned vm = 0; vm < v.vms; ++vm)
    if (std::none_of(v.assign.begin(), v.assign.end(), [vm](const VmAssignment& a) { return a.vm == vm; }))
      return "VM " + std::to_string(vm) + " has no device (vmm.vms = " + std::to_string(v.vms) + ")";
  return "";
}

// One architecture's costs. exit/entry: half each of a VM exit to the VMM in user space and
// back, per architecture (docs/vmm.md, "Costs": a KVM hypercall round trip from Dall et al.,
// ISCA 2016, Table II, plus an estimated user-space transition); the rest are the same
// estimates on every host (docs/vmm.md gives each one's reasoning).
Section<vmm::VmmCosts> cost_keys(const char* what, uint64_t exit_entry_cycles, uint64_t ioeventfd_cycles) {
  using C = vmm::VmmCosts;
  return Section<C>(what, StructDefaults::Own)
      .integer("exit_cycles", &C::exit_cycles, exit_entry_cycles, 0, 100000000, "cycles",
               "a trapped guest register access: VM exit to the VMM's handler in user space")
      .integer("entry_cycles", &C::entry_cycles, exit_entry_cycles, 0, 100000000, "cycles",
               "the handler's return to the running guest (VM entry)")
      .integer("reg_access_cycles", &C::reg_access_cycles, 600, 0, 100000000, "cycles",
               "the VMM's MMIO dispatch and register emulation (estimate)")
      .integer("fetch_cycles", &C::fetch_cycles, 200, 0, 100000000, "cycles",
               "the VMM reads one guest queue entry (or STE) from guest RAM (estimate)")
      .integer("decode_cycles", &C::decode_cycles, 200, 0, 100000000, "cycles",
               "the VMM decodes and checks one guest queue entry (estimate)")
      .integer("syscall_cycles", &C::syscall_cycles, 1000, 0, 100000000, "cycles",
               "ioctl entry plus exit, with speculation mitigations (estimate)")
      .integer("iommufd_call_cycles", &C::iommufd_call_cycles, 1000, 0, 100000000, "cycles",
               "iommufd's part of one call: object lookup, copies (estimate)")
      .integer("iommufd_entry_cycles", &C::iommufd_entry_cycles, 50, 0, 100000000, "cycles",
               "per IOMMU_HWPT_INVALIDATE entry: the kernel's check and conversion (estimate)")
      .integer("hwpt_alloc_cycles", &C::hwpt_alloc_cycles, 4000, 0, 100000000, "cycles",
               "IOMMU_HWPT_ALLOC of a nested HWPT before its attach (estimate)")
      .integer("destroy_cycles", &C::destroy_cycles, 1000, 0, 100000000, "cycles", "IOMMU_DESTROY (estimate)")
      .integer("complete_cycles", &C::complete_cycles, 200, 0, 100000000, "cycles",
               "completing the guest's sync: its CONS, MSI or status store (estimate)")
      .integer("iothread_wakeup_cycles", &C::iothread_wakeup_cycles, 10000, 0, 100000000, "cycles",
               "vmm.completion = deferred: the VMM's iothread wakes for a doorbell (eventfd, poll, handler; "
               "estimate)")
      .integer("ioeventfd_exit_cycles", &C::ioeventfd_exit_cycles, ioeventfd_cycles, 0, 100000000, "cycles",
               "vmm.virtio.notify = ioeventfd: the virtio doorbell's exit, handled in the host kernel, and the resume "
               "(a hypercall-like round trip, docs/vmm.md \"virtio-iommu\")")
      .integer("forward_batch", &C::forward_batch, 1, 1, 64, "commands",
               "guest commands per IOMMU_HWPT_INVALIDATE; QEMU issues one per call")
      .integer("event_irq_cycles", &C::event_irq_cycles, 4000, 0, 100000000, "cycles",
               "guest faults: the host's event interrupt until its threaded handler runs (estimate)")
      .integer("event_report_cycles", &C::event_report_cycles, 500, 0, 100000000, "cycles",
               "guest faults: iommufd_viommu_report_event per record, allocation and queueing (estimate)")
      .integer("event_wakeup_cycles", &C::event_wakeup_cycles, 10000, 0, 100000000, "cycles",
               "guest faults: the vEVENTQ's eventfd wakes the VMM's main loop (estimate)")
      .integer("irq_inject_cycles", &C::irq_inject_cycles, 2000, 0, 100000000, "cycles",
               "guest faults: the VMM injects the guest's event interrupt (estimate)");
}
Section<VirtioSettings> virtio_keys() {
  using S = VirtioSettings;
  return Section<S>("The VMM's virtio-iommu device of vmm.paths = virtio (docs/vmm.md, \"virtio-iommu\").")
      .integer("queue_size", &S::queue_size, 256, 2, 32768, "entries",
               "the request queue's QueueNumMax (QEMU VIOMMU_DEFAULT_QUEUE_SIZE); a power of two")
      .integer("probe_size", &S::probe_size, 512, 0, 65536, "bytes",
               "config probe_size: the PROBE request's property space (QEMU VIOMMU_PROBE_SIZE); 0 offers no PROBE")
      .integer("tree_cycles", &S::tree_cycles, 300, 0, 100000000, "cycles",
               "one operation on the device's domain or mapping trees (GTree lookup, insert or remove; estimate)")
      .choice("notify", &S::notify, VirtioNotify::Ioeventfd,
              {{"ioeventfd", VirtioNotify::Ioeventfd}, {"trap", VirtioNotify::Trap}},
              "the request queue's doorbell: ioeventfd, handled in the host kernel (vmm.<arch>.ioeventfd_exit_cycles), "
              "the device then runs in the VMM's main loop while the guest polls (QEMU's virtio default); trap, an "
              "exit to the VMM that runs the device inside it (vmm.completion applies)")
      .choice("host_flush", &S::host_flush, VirtioHostFlush::PerChunk,
              {{"per_chunk", VirtioHostFlush::PerChunk}, {"domain", VirtioHostFlush::Domain}},
              "a guest UNMAP on the host: per_chunk, one IOMMU_IOAS_UNMAP per endpoint per power-of-two chunk, each "
              "with the host driver's own invalidation (QEMU); domain, the same unmaps clearing PTEs only, then one "
              "domain-wide invalidation per endpoint (an idealised host, MODEL EXTENSION)")
      .integer("pin_page_cycles", &S::pin_page_cycles, 200, 0, 100000000, "cycles",
               "IOMMU_IOAS_MAP pins, IOMMU_IOAS_UNMAP unpins, each 4 KiB page (pin_user_pages fast path; estimate)")
      .check("", [](const S& v) -> std::string {
        return v.queue_size & (v.queue_size - 1) ? "queue_size must be a power of two" : "";
      });
}
}  // namespace

Section<VmmSettings> vmm_keys() {
  using V = VmmSettings;
  return Section<V>("Guests behind a vIOMMU: the invalidation paths each vendor runs and what the trapped path's "
                    "steps cost on each host architecture, in cycles of driver.cpu_mhz (docs/vmm.md).",
                    StructDefaults::Own)
      .custom(value_key("paths", KeyType::String, "native", "a comma list of native, trapped, accelerated, virtio",
                        "",
                        "native: the host driver owns both stages; trapped: a guest driver owns stage 1 behind an "
                        "emulated vIOMMU whose commands the VMM forwards through iommufd; accelerated: the same guest, "
                        "its invalidations on a queue the hardware reads itself (SMMUv3 VCMDQ, AMD hardware vIOMMU; "
                        "VT-d has none); virtio: a guest driver sends map and unmap requests to a virtio-iommu device "
                        "whose VMM maps them into a single-stage host domain; several: side by side on identical "
                        "traffic, in this order (trapped and accelerated need iommu.translation = nested; virtio runs "
                        "under s1 or nested, the guest's domain single-stage either way)"),
              read_paths, [](const VmmSettings& v) { return nlohmann::json(v.paths); })
      .integer("vms", &V::vms, 1, 1, kMaxVms, "VMs",
               "VMs on each trapped lane, each with its own guest RAM (VM v's at platform.guest_ram_pa + v * the "
               "span one VM takes), iommufd context, vIOMMUs and guest drivers; stats vm<v>.* when more than one")
      .integer("vcmdqs", &V::vcmdqs, 1, 1, 64, "queues",
               "smmuv3@accelerated: the VCMDQs each VM's CMDQV VINTF maps into its guest; a vCPU uses queue cpu % vcmdqs "
               "(Linux tegra241_cmdqv_get_cmdq); at most the VINTF's LVCMDQs (4)")
      .check("vcmdqs",
             [](const VmmSettings& v) {
               return v.vcmdqs != 1 && v.paths.find(kAcceleratedPath) == std::string::npos
                          ? std::string("only the accelerated path has VCMDQs (vmm.paths has no accelerated): use 1")
                          : std::string();
             })
      .custom(value_key("assign", KeyType::List, nlohmann::json::array(), "list of objects", "",
                        "which VM owns each endpoint: objects {endpoint (traffic.endpoints index), vm (below "
                        "vmm.vms), virt_id (the guest's vSID / vRID / vDeviceID for it, 0 .. 65535), pasid (optional: "
                        "that PASID only)}. Empty: every endpoint whole to VM 0, its index as virt_id"),
              read_assign, write_assign)
      .check("assign", check_assign)
      .custom(value_key("teardown_vm", KeyType::Integer, -1, "-1 .. 3", "",
                        "once the traffic is done, the VMM unmaps all of this VM's memory (IOMMU_IOAS_UNMAP of "
                        "everything, as when it is torn down): vm<v>.vmm.host_commands_per_ioas_unmap then holds "
                        "its host fan-out; -1: none"),
              [](const ConfigReader& r, VmmSettings& v) {
                const int64_t vm = r.signed_integer("teardown_vm", -1, kMaxVms - 1);
                v.teardown_vm = vm >= 0 ? std::optional<unsigned>(unsigned(vm)) : std::nullopt;
              },
              [](const VmmSettings& v) { return nlohmann::json(v.teardown_vm ? int64_t(*v.teardown_vm) : int64_t(-1)); })
      .check("teardown_vm",
             [](const VmmSettings& v) {
               return v.teardown_vm && *v.teardown_vm >= v.vms
                          ? "VM " + std::to_string(*v.teardown_vm) + " does not exist (vmm.vms = " +
                                std::to_string(v.vms) + ")"
                          : std::string();
             })
      .choice("inject", &V::inject, vmm::VmmFault::None,
              {{"none", vmm::VmmFault::None}, {"drop_tlbi", vmm::VmmFault::DropTlbi},
               {"drop_atc_inv", vmm::VmmFault::DropAtcInv}, {"drop_host_flush", vmm::VmmFault::DropHostFlush},
               {"wrong_vintf_vmid", vmm::VmmFault::WrongVintfVmid}},
              "a VMM bug, to check the oracle: drop_tlbi completes the guest's CMD_SYNCs without forwarding its "
              "TLBIs, drop_atc_inv without forwarding its ATC_INVs (with ATS) (both smmuv3@trapped); "
              "drop_host_flush makes the VMM clear the host's PTEs without invalidating its caches: on a virtio lane "
              "the device answers a guest UNMAP OK so; on a trapped lane its own IOMMU_IOAS_UNMAPs (the stress "
              "workload's page moves, vmm.teardown_vm) do; "
              "wrong_vintf_vmid (smmuv3@accelerated only): the host kernel programs the guest's CMDQV VINTF with a "
              "VMID other than its nest parent's, so the hardware puts a VMID on the guest's TLBIs that its "
              "translations do not carry. Stale translations survive and the run must report violations (exit 3)")
      .choice("completion", &V::completion, vmm::VmmCompletion::Synchronous,
              {{"synchronous", vmm::VmmCompletion::Synchronous}, {"deferred", vmm::VmmCompletion::Deferred}},
              "when the VMM runs a guest's queue: synchronous, inside the doorbell write's trap (QEMU); deferred, "
              "in an iothread after the write returned, so the guest polls meanwhile (a VT-d guest reads FSTS on "
              "every poll, an SMMUv3 guest CMDQ_CONS: each read traps)")
      .choice("amd_domid", &V::amd_domid, driver::AmdNestedDomainIds::PerGuestDomain,
              {{"per_gdomid", driver::AmdNestedDomainIds::PerGuestDomain},
               {"per_device", driver::AmdNestedDomainIds::PerDevice},
               {"per_group", driver::AmdNestedDomainIds::PerGroup}},
              "amdvi@trapped: the host DomainID of the guest's nested domains: per_gdomid, one per guest DomainID "
              "(Linux gdomid_array); per_device, one per assigned device (a guest domain over two devices costs two "
              "commands per invalidation); per_group, one for the whole vIOMMU (two guest domains at the same PASID "
              "share IOTLB tags: wrong translations the oracle reports)")
      .choice("arm_vmid", &V::arm_vmid, driver::ArmNestedVmids::PerViommu,
              {{"per_viommu", driver::ArmNestedVmids::PerViommu},
               {"per_nested_hwpt", driver::ArmNestedVmids::PerNestedHwpt}},
              "smmuv3@trapped: the VMID of the guest's nested domains: per_viommu, the nest parent's (Linux "
              "arm_vsmmu_init); per_nested_hwpt, one per nested HWPT, so a guest TLBI goes to every VMID of the vIOMMU")
      .section("virtio", &V::virtio, virtio_keys())
      .section("arm64", &V::arm64, cost_keys("An Arm64 host (SMMUv3).", 3826, 6500))
      .section("x86_intel", &V::x86_intel, cost_keys("An Intel x86 host (VT-d).", 1226, 1300))
      .section("x86_amd", &V::x86_amd, cost_keys("An AMD x86 host (AMD-Vi).", 1264, 1376));
}

std::vector<VmAssignment> vm_assignment(const VmmSettings& v, size_t endpoints) {
  if (!v.assign.empty()) return v.assign;
  std::vector<VmAssignment> all;
  for (size_t i = 0; i < endpoints; ++i) all.push_back(VmAssignment{unsigned(i), 0, i, std::nullopt});
  return all;
}

Section<GuestSettings> guest_keys() {
  using G = GuestSettings;
  return Section<G>("What a trapped lane's guest driver does that its host's does not (docs/vmm.md, \"Cache-tag "
                    "policies\").")
      .choice("amd_gcr3", &G::amd_gcr3, driver::AmdGcr3Tables::PerDevice,
              {{"per_device", driver::AmdGcr3Tables::PerDevice}, {"shared", driver::AmdGcr3Tables::Shared}},
              "amdvi@trapped: the guest driver's GCR3 tables: per_device, one table and DomainID per device "
              "(Linux gcr3_info); shared, devices attached (without PASID) to the same domain share one, so the "
              "guest names one DomainID per invalidation")
      .integer("virtio_request_cycles", &G::virtio_request_cycles, 200, 0, 100000000, "cycles",
               "virtio: the guest driver's interval-tree operation and request build per map or unmap (Linux "
               "viommu_add_mapping / viommu_del_mappings; estimate)");
}

}  // namespace iommusim::platforms
