// SMMUv3 backend of the host driver, modelled on Linux arm-smmu-v3: it lays out the
// stream table, STEs, CDs, page tables and both queues in simulated memory in their real
// formats, then drives the SMMU through MMIO and the command queue.
//
// Invalidations follow Linux: a range unmap issues TLBI_NH_VA (S1/nested) or
// TLBI_S2_IPA (+ TLBI_NH_ALL on a nest parent) with the range form when IDR3.RIL is set;
// a domain flush is TLBI_NH_ASID (S1/nested) or TLBI_S12_VMALL (S2). Every batch ends
// with CMD_SYNC; completion is polled through the MSI write into the CMD_SYNC slot
// (Linux's MSI polling) or through CMDQ_CONS (SEV mode). A CMDQ_ERR is handled as Linux
// does: the offending entry is replaced by a CMD_SYNC and GERRORN is acknowledged.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/memory/sparse_memory.h"
#include "models/pagetable/table_builder.h"
#include "models/pagetable/vmsa.h"
#include "models/smmuv3/commands.h"
#include "models/smmuv3/smmuv3.h"
#include "platforms/driver/driver.h"

namespace iommusim::driver {

enum class SmmuSyncMode { MsiPoll, SevPoll };

struct Smmuv3DriverConfig {
  DriverTiming timing;
  uint64_t table_pool_base = 0x100000000ull;   // host memory for stream table, queues, S1/S2 tables
  uint64_t table_pool_bytes = 256ull << 20;
  uint64_t guest_pool_ipa = 0x6000000ull;      // guest IPA range for nested S1 tables and CDs
  uint64_t guest_pool_bytes = 16ull << 20;
  unsigned cmdq_log2 = 8;
  unsigned evtq_log2 = 7;
  bool two_level_stream_table = false;
  unsigned stream_table_log2 = 8;              // SIDs covered by the stream table
  unsigned cd_table_log2 = 4;                  // S1CDMax: SubstreamIDs per device
  SmmuSyncMode sync_mode = SmmuSyncMode::MsiPoll;
};
std::string validate(const Smmuv3DriverConfig& c);

class Smmuv3Driver : public sc_core::sc_module, public IommuDriver {
 public:
  tlm_utils::simple_initiator_socket<Smmuv3Driver> mmio;

  Smmuv3Driver(sc_core::sc_module_name name, const Smmuv3DriverConfig& cfg, smmuv3::Smmuv3& smmu,
               memory::SparseMemory& memory);
  ~Smmuv3Driver() override;

  std::string vendor() const override { return "smmuv3"; }
  Status init() override;
  std::optional<DomainId> create_domain(DomainKind kind, std::optional<DomainId> parent, std::string* why) override;
  Status attach(uint32_t rid, std::optional<uint32_t> pasid, DomainId domain) override;
  Status map(DomainId d, uint64_t iova, uint64_t pa, uint64_t bytes, Prot prot, uint64_t page_bytes) override;
  Status unmap(DomainId d, uint64_t iova, uint64_t bytes) override;
  Status invalidate_range(DomainId d, uint64_t iova, uint64_t bytes, bool leaf) override;
  Status invalidate_domain(DomainId d) override;
  Status sync() override;
  // SMMUEN=0 with GBPA.ABORT=0: every stream passes untranslated (global bypass).
  void global_bypass();
  // Consumes the event queue as Linux's EVTQ thread does: reads PROD, decodes each record,
  // advances CONS (acknowledging overflow). Returns the number of records consumed.
  unsigned drain_events();
  // Records consumed so far, by EventID (index = EventID byte).
  uint64_t events_seen(smmuv3::EventId id) const { return events_by_id_[static_cast<uint8_t>(id)]; }

  // Queues raw entries plus a CMD_SYNC and waits (tests use it to inject bad commands).
  Status submit(const std::vector<smmuv3::CmdWords>& cmds, const std::string& op);
  uint64_t command_errors_recovered() const { return errors_recovered_; }
  uint64_t ste_address(uint32_t sid) const;
  uint64_t evtq_base() const { return evtq_base_; }
  uint16_t vmid_of(DomainId d) const;
  uint16_t asid_of(DomainId d) const;
  void register_stats(common::StatRegistry& reg, const std::string& prefix) const;

 private:
  struct Domain;
  class HostTables;
  class GuestTables;

  uint64_t alloc_host(uint64_t bytes, uint64_t align);
  void charge_cycles(uint64_t n);
  void mmio_write32(uint64_t off, uint32_t v);
  void mmio_write64(uint64_t off, uint64_t v);
  uint32_t mmio_read32(uint64_t off);
  Status write_ste(uint32_t sid);
  Domain* domain(DomainId d, Status& st);
  Status edit_result(const pagetable::EditResult& r);

  Smmuv3DriverConfig cfg_;
  smmuv3::Smmuv3& smmu_;
  memory::SparseMemory& mem_;
  sc_core::sc_time cpu_cycle_;
  uint64_t host_next_, host_end_;
  uint64_t strtab_base_ = 0, cmdq_base_ = 0, evtq_base_ = 0;
  uint32_t cmdq_prod_ = 0;
  bool ril_ = false;
  std::map<uint32_t, uint64_t> l2_tables_;   // 2-level stream table: L1 index -> L2 table
  std::unique_ptr<HostTables> host_tables_;
  std::unique_ptr<GuestTables> guest_tables_;
  std::vector<std::unique_ptr<Domain>> domains_;
  struct Attachment { DomainId s2 = 0; bool has_s2 = false; uint64_t cd_table = 0; bool cd_in_guest = false;
                      bool has_cd = false; std::map<uint32_t, DomainId> by_ssid; bool bypass_no_pasid = false; };
  std::map<uint32_t, Attachment> streams_;
  std::vector<smmuv3::CommandTrace> traces_;   // indexed by queue slot
  uint16_t next_vmid_ = 1, next_asid_ = 1;
  uint64_t errors_recovered_ = 0;
  uint64_t op_start_ps_ = 0;   // set by unmap so its PTE edits count as software time
  common::Counter commands_issued_, polls_, events_consumed_, event_overflows_;
  std::array<uint64_t, 256> events_by_id_{};
  std::string pending_op_;   // names the record of an operation that ends in an invalidation
};

}  // namespace iommusim::driver
