// iommufd objects over the SMMUv3 host driver (platforms/vmm/iommufd.h,
// platforms/driver/nesting.h): each call's errno as Linux's drivers/iommu/iommufd and
// arm-smmu-v3-iommufd.c return it, the guest command conversions, and the physical STE a
// vSTE becomes. Expected words are worked out from IHI 0070 field positions (§4 commands,
// §5.2 STE) and the driver's documented choices (VMIDs from 1; its stage-2 STE fields).
#include <cstdint>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "platforms/vmm/iommufd.h"
#include "smmuv3_fixture.h"

namespace iommusim::test {
namespace {

using driver::HwptArmSmmuv3;
using driver::HwptDataType;
using driver::InvalidateDataType;
using driver::UserData;
using driver::ViommuArmSmmuv3Invalidate;
using driver::ViommuType;
using vmm::Errno;
using vmm::Iommufd;
using Call = vmm::Iommufd::Call;

constexpr uint32_t kRid = 0x10;       // the assigned device's SID
constexpr uint32_t kOtherRid = 0x11;  // a second device
constexpr uint64_t kVsid = 3;         // the guest's name for kRid
constexpr uint64_t kGpaBytes = 2ull << 20;
constexpr uint32_t kMapRw = vmm::kIoasMapFixedIova | vmm::kIoasMapReadable | vmm::kIoasMapWriteable;

// STE dword 0 of a guest's S1 vSTE: V, Config = S1 translate (5 << 1), S1ContextPtr =
// GPA 0x80000, S1CDMax = 4 (bits 63:59); dword 1: S1DSS 2, S1CIR 1, S1COR 1, S1CSH 3.
constexpr uint64_t kVste0 = 0x1 | (5u << 1) | 0x80000 | (4ull << 59);   // 0x200000000008000B
constexpr uint64_t kVste1 = 0x2 | (1u << 2) | (1u << 4) | (3u << 6);    // 0xD6

// One VM on the harness's SMMU: a nest-parent HWPT of an IOAS mapping GPA [0, 2 MB), a
// vIOMMU on it and kRid bound (no vDEVICE yet).
struct Vm {
  Iommufd fd;
  uint32_t dev = 0, other = 0, ioas = 0, parent = 0, viommu = 0;
  explicit Vm(Harness& h) : fd({vmm::HostIommu{&h.drv, &h.drv}}) {}
  void build() {
    ASSERT_EQ(fd.bind_device(kRid, 0, &dev), Errno::Ok);
    ASSERT_EQ(fd.bind_device(kOtherRid, 0, &other), Errno::Ok);
    ASSERT_EQ(fd.ioas_alloc(0, &ioas), Errno::Ok);
    ASSERT_EQ(fd.ioas_map(ioas, kMapRw, 0, kGuestRamPa, kGpaBytes), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, dev, ioas, UserData{}, &parent), Errno::Ok);
    ASSERT_EQ(fd.viommu_alloc(0, ViommuType::ArmSmmuv3, dev, parent, &viommu), Errno::Ok);
  }
  Errno nested(uint64_t dw0, uint64_t dw1, uint32_t* out) {
    HwptArmSmmuv3 v;
    v.ste[0] = dw0;
    v.ste[1] = dw1;
    return fd.hwpt_alloc(0, dev, viommu, UserData{HwptDataType::ArmSmmuv3, &v, sizeof(v)}, out);
  }
};

// Runs `body` in the simulation with the SMMU up and one VM built on it.
void run_with_vm(const std::function<void(Harness&, Vm&)>& body,
                 const driver::Smmuv3DriverConfig& dc = driver::Smmuv3DriverConfig{}) {
  Harness h(smmu_config(), dc);
  h.run([&](Harness& h) {
    IOMMUSIM_ASSERT_OK(h.drv.init());
    Vm vm(h);
    vm.build();
    if (!::testing::Test::HasFatalFailure()) body(h, vm);
  });
}

// Commands the driver has written to the physical queue so far (CMDQ_PROD, wrap bit
// included, modulo twice the 256-entry queue).
uint32_t produced(Harness& h) { return uint32_t(h.smmu.peek_register(smmuv3::reg::CMDQ_PROD)) & 0x1FF; }

smmuv3::SteWords ste_of(Harness& h, uint32_t sid) {
  smmuv3::SteWords w;
  h.memory.read(h.drv.ste_address(sid), w.data(), 64);
  return w;
}

TEST(Iommufd, ObjectCallsReturnLinuxErrnos) {
  run_with_vm([](Harness& h, Vm& vm) {
    Iommufd& fd = vm.fd;
    uint32_t id = 0;
    uint64_t unmapped = 0;
    // IOAS
    EXPECT_EQ(fd.ioas_alloc(1, &id), Errno::OpNotSupp);
    EXPECT_EQ(fd.ioas_map(vm.ioas, kMapRw | (1u << 3), 0x400000, kGuestRamPa, 4096), Errno::OpNotSupp);
    EXPECT_EQ(fd.ioas_map(vm.ioas, kMapRw, 0x400800, kGuestRamPa, 4096), Errno::Inval) << "unaligned";
    EXPECT_EQ(fd.ioas_map(vm.ioas, kMapRw, 0x1000, kGuestRamPa, 4096), Errno::Exist) << "inside the 2 MB area";
    EXPECT_EQ(fd.ioas_map(vm.parent, kMapRw, 0x400000, kGuestRamPa, 4096), Errno::NoEnt) << "not an IOAS";
    EXPECT_EQ(fd.ioas_unmap(vm.ioas, 0x400000, 4096, &unmapped), Errno::NoEnt) << "nothing mapped there";
    EXPECT_EQ(fd.ioas_unmap(vm.ioas, 0, 4096, &unmapped), Errno::NoEnt) << "would split the area";
    // HWPT_ALLOC
    const UserData none;
    HwptArmSmmuv3 vste;
    vste.ste[0] = kVste0;
    const UserData arm{HwptDataType::ArmSmmuv3, &vste, sizeof(vste)};
    EXPECT_EQ(fd.hwpt_alloc(1u << 1, vm.dev, vm.ioas, none, &id), Errno::OpNotSupp) << "unknown flag";
    EXPECT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent, vm.dev, vm.viommu, arm, &id), Errno::Inval);
    EXPECT_EQ(fd.hwpt_alloc(0, 99, vm.ioas, none, &id), Errno::NoEnt) << "unknown device";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, 99, none, &id), Errno::Inval) << "unknown pt_id";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.dev, none, &id), Errno::Inval) << "a device is no pt";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.ioas, arm, &id), Errno::OpNotSupp) << "user data on an IOAS";
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, vm.parent, arm, &id), Errno::OpNotSupp)
        << "the SMMU nests only through a vIOMMU";
    uint32_t plain = 0;
    ASSERT_EQ(fd.hwpt_alloc(0, vm.dev, vm.ioas, none, &plain), Errno::Ok);
    EXPECT_EQ(fd.hwpt_alloc(0, vm.dev, plain, arm, &id), Errno::OpNotSupp)
        << "no domain_alloc_nested is checked before the parent (iommufd_hwpt_nested_alloc)";
    // VIOMMU_ALLOC
    EXPECT_EQ(fd.viommu_alloc(1, ViommuType::ArmSmmuv3, vm.dev, vm.parent, &id), Errno::OpNotSupp);
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::Default, vm.dev, vm.parent, &id), Errno::OpNotSupp);
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::Tegra241Cmdqv, vm.dev, 99, &id), Errno::OpNotSupp)
        << "the type is refused before the parent is looked up";
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::ArmSmmuv3, vm.dev, plain, &id), Errno::Inval) << "not a nest parent";
    EXPECT_EQ(fd.viommu_alloc(0, ViommuType::ArmSmmuv3, vm.dev, vm.ioas, &id), Errno::NoEnt) << "not a HWPT_PAGING";
    // VDEVICE_ALLOC
    uint32_t vdev = 0;
    ASSERT_EQ(fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    EXPECT_EQ(fd.vdevice_alloc(vm.viommu, vm.other, kVsid, &id), Errno::Exist) << "virt_id taken";
    EXPECT_EQ(fd.vdevice_alloc(vm.viommu, vm.dev, kVsid + 1, &id), Errno::Exist) << "device has one";
    EXPECT_EQ(fd.vdevice_alloc(vm.parent, vm.other, 9, &id), Errno::NoEnt) << "not a vIOMMU";
    // HWPT_INVALIDATE
    ViommuArmSmmuv3Invalidate cmds[3];
    for (auto& c : cmds) {
      const smmuv3::CmdWords w = smmuv3::cmd_tlbi_nh_asid(0, 7);
      c.cmd[0] = w[0];
      c.cmd[1] = w[1];
    }
    uint32_t n = 0;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, cmds, sizeof(cmds[0]), &n), Errno::Ok);
    EXPECT_EQ(n, 0u) << "entry_num 0 probes the type";
    n = 3;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::VtdS1, cmds, sizeof(cmds[0]), &n), Errno::Inval);
    EXPECT_EQ(n, 0u);
    n = 3;
    EXPECT_EQ(fd.hwpt_invalidate(vm.parent, InvalidateDataType::ArmSmmuv3, cmds, sizeof(cmds[0]), &n), Errno::Inval);
    n = 3;
    EXPECT_EQ(fd.hwpt_invalidate(99, InvalidateDataType::ArmSmmuv3, cmds, sizeof(cmds[0]), &n), Errno::NoEnt);
    const uint32_t issued = produced(h);
    const smmuv3::CmdWords sync = smmuv3::cmd_sync(smmuv3::SyncCs::None);
    cmds[2].cmd[0] = sync[0];   // a guest may not send CMD_SYNC: EIO, and its block issues nothing
    cmds[2].cmd[1] = sync[1];
    n = 3;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, cmds, sizeof(cmds[0]), &n), Errno::Io);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(produced(h), issued);
    n = 2;
    EXPECT_EQ(fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, cmds, sizeof(cmds[0]), &n), Errno::Ok);
    EXPECT_EQ(n, 2u);
    EXPECT_EQ((produced(h) - issued) & 0x1FF, 3u) << "two TLBI_NH_ASID and one CMD_SYNC";
    // DESTROY
    EXPECT_EQ(fd.destroy(vm.parent), Errno::Busy) << "the vIOMMU holds it";
    EXPECT_EQ(fd.destroy(vm.viommu), Errno::Busy) << "the vDEVICE holds it";
    EXPECT_EQ(fd.destroy(99), Errno::NoEnt);
    EXPECT_EQ(fd.destroy(vdev), Errno::Ok);
    EXPECT_EQ(fd.destroy(vm.viommu), Errno::Ok);
    EXPECT_EQ(fd.destroy(vm.parent), Errno::Ok);
    uint32_t again = 0;
    ASSERT_EQ(fd.ioas_alloc(0, &again), Errno::Ok);
    EXPECT_EQ(again, vm.parent) << "IDs are reused lowest first";
    EXPECT_EQ(fd.ioas_unmap(vm.ioas, 0, kGpaBytes, &unmapped), Errno::Ok);
    EXPECT_EQ(unmapped, kGpaBytes);
    EXPECT_EQ(fd.errors(Call::HwptAlloc, Errno::Inval), 3u);
    EXPECT_EQ(fd.errors(Call::Destroy, Errno::Busy), 2u);
  });
}

TEST(Iommufd, GuestCommandsGetTheVmidAndPhysicalSid) {
  run_with_vm([](Harness& h, Vm& vm) {
    uint32_t vdev = 0;
    ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    const driver::ViommuHandle v = 1;   // the driver's first vIOMMU
    ASSERT_EQ(h.drv.viommu_tag(v), 1u) << "the nest parent is the first stage-2 domain: VMID 1";
    // TLBI_NH_VA, ASID 5, VA 0x12345000, leaf, guest VMID 0: opcode 0x12, VMID [47:32] and
    // ASID [63:48] in dword 0; Leaf [0] and Address [63:12] in dword 1.
    smmuv3::CmdWords c = smmuv3::cmd_tlbi_nh_va(0, 5, 0x12345000, true);
    ASSERT_EQ(h.drv.convert_user_cmd(v, c), Errno::Ok);
    EXPECT_EQ(c[0], 0x0005000100000012ull);
    EXPECT_EQ(c[1], 0x0000000012345001ull);
    // A VMID the guest made up is overwritten too.
    c = smmuv3::cmd_tlbi_nh_asid(0x77, 5);
    ASSERT_EQ(h.drv.convert_user_cmd(v, c), Errno::Ok);
    EXPECT_EQ(c[0], 0x0005000100000011ull);
    // TLBI_NSNH_ALL becomes TLBI_NH_ALL (0x10) of the VM's VMID.
    c = smmuv3::cmd_tlbi_nsnh_all();
    ASSERT_EQ(h.drv.convert_user_cmd(v, c), Errno::Ok);
    EXPECT_EQ(c[0], 0x0000000100000010ull);
    EXPECT_EQ(c[1], 0u);
    // CFGI_CD vSID 3, SSID 2, leaf: SID [63:32] becomes 0x10; SSID [31:12] stays.
    c = smmuv3::cmd_cfgi_cd(uint32_t(kVsid), 2, true);
    ASSERT_EQ(h.drv.convert_user_cmd(v, c), Errno::Ok);
    EXPECT_EQ(c[0], 0x0000001000002005ull);
    EXPECT_EQ(c[1], 1u);
    // Rejected: a vSID with no vDEVICE, a stage-2 TLBI, a CMD_SYNC, a CFGI_STE.
    c = smmuv3::cmd_cfgi_cd(4, 0, true);
    EXPECT_EQ(h.drv.convert_user_cmd(v, c), Errno::Io);
    c = smmuv3::cmd_tlbi_s2_ipa(1, 0x1000, true);
    EXPECT_EQ(h.drv.convert_user_cmd(v, c), Errno::Io);
    c = smmuv3::cmd_sync(smmuv3::SyncCs::None);
    EXPECT_EQ(h.drv.convert_user_cmd(v, c), Errno::Io);
    c = smmuv3::cmd_cfgi_ste(uint32_t(kVsid), true);
    EXPECT_EQ(h.drv.convert_user_cmd(v, c), Errno::Io);

    // Through the ioctl: 64 guest NSNH_ALLs go out as 63 + 1, each block with a CMD_SYNC
    // (CMDQ_BATCH_ENTRIES - 1), and the physical queue holds the converted words.
    std::vector<smmuv3::CommandTrace> traces;
    h.smmu.set_command_probe([&](const smmuv3::CommandTrace& t) { traces.push_back(t); });
    std::vector<ViommuArmSmmuv3Invalidate> cmds(64);
    for (auto& e : cmds) e.cmd[0] = smmuv3::cmd_tlbi_nsnh_all()[0];
    uint32_t n = 64;
    ASSERT_EQ(vm.fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, cmds.data(), sizeof(cmds[0]), &n),
              Errno::Ok);
    EXPECT_EQ(n, 64u);
    ASSERT_EQ(traces.size(), 66u);
    EXPECT_EQ(traces[63].opcode, uint8_t(smmuv3::Opcode::Sync));
    EXPECT_EQ(traces[65].opcode, uint8_t(smmuv3::Opcode::Sync));
    const uint64_t base = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & ~0x1Full & ((1ull << 52) - 1);
    const uint32_t slots = 1u << driver::Smmuv3DriverConfig{}.cmdq_log2;
    for (unsigned i : {0u, 62u, 64u}) {
      uint64_t w[2];
      h.memory.read(base + uint64_t(traces[i].queue_index % slots) * 16, w, 16);
      EXPECT_EQ(traces[i].opcode, uint8_t(smmuv3::Opcode::TlbiNhAll));
      EXPECT_EQ(w[0], 0x0000000100000010ull) << "entry " << i;
    }
  });
}

TEST(Iommufd, VsteBecomesThePhysicalSte) {
  run_with_vm([](Harness& h, Vm& vm) {
    uint32_t vdev = 0, nested = 0;
    ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    // The parent alone, on the other device: the stage-2 STE Config 6 (0xD with V).
    ASSERT_EQ(vm.fd.attach(vm.other, vm.parent), Errno::Ok);
    const smmuv3::SteWords s2 = ste_of(h, kOtherRid);
    EXPECT_EQ(s2[0], 0xDull);
    // dword 2: VMID 1, T0SZ 16 [37:32], SL0 2 [39:38], IR0 1 [41:40], OR0 1 [43:42],
    // SH0 3 [45:44], PS 5 [50:48], AA64 [51], S2R [58].
    EXPECT_EQ(s2[2], 0x040D359000000001ull);
    // An S1 vSTE: Config 7 (nested) with the vSTE's stage-1 fields, MEV [19] added in
    // dword 1, the parent's stage 2 in dwords 2 and 3.
    ASSERT_EQ(vm.nested(kVste0, kVste1, &nested), Errno::Ok);
    ASSERT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    smmuv3::SteWords w = ste_of(h, kRid);
    EXPECT_EQ(w[0], 0x200000000008000Full);
    EXPECT_EQ(w[1], 0x00000000000800D6ull);
    EXPECT_EQ(w[2], 0x040D359000000001ull);
    EXPECT_EQ(w[3], s2[3]) << "the parent's stage-2 table";
    EXPECT_EQ(vm.fd.destroy(nested), Errno::Busy) << "attached";
    // A bypass vSTE (Config 4): the parent's stage-2 STE.
    uint32_t bypass = 0, abort = 0, invalid = 0;
    ASSERT_EQ(vm.nested(0x1 | (4u << 1), 0, &bypass), Errno::Ok);
    ASSERT_EQ(vm.fd.attach(vm.dev, bypass), Errno::Ok);
    w = ste_of(h, kRid);
    EXPECT_EQ(w[0], 0xDull);
    EXPECT_EQ(w[2], 0x040D359000000001ull);
    EXPECT_EQ(vm.fd.destroy(nested), Errno::Ok) << "detached by the new attach";
    // An abort vSTE, and one with V = 0 (any other bits ignored): an abort STE, V alone.
    ASSERT_EQ(vm.nested(0x1, 0, &abort), Errno::Ok);
    ASSERT_EQ(vm.fd.attach(vm.dev, abort), Errno::Ok);
    EXPECT_EQ(ste_of(h, kRid)[0], 0x1ull);
    ASSERT_EQ(vm.nested(0x2 | (1ull << 62), ~0ull, &invalid), Errno::Ok);
    ASSERT_EQ(vm.fd.attach(vm.dev, invalid), Errno::Ok);
    w = ste_of(h, kRid);
    EXPECT_EQ(w[0], 0x1ull);
    EXPECT_EQ(w[1], 0u);
    EXPECT_EQ(w[2], 0u);
  });
}

TEST(Iommufd, BadVstesAndAttachesAreRejected) {
  run_with_vm([](Harness& h, Vm& vm) {
    uint32_t id = 0;
    // arm_smmu_validate_vste: EIO for a bit outside STRTAB_STE_0/1_NESTING_ALLOWED, a
    // Config other than abort/bypass/S1, an EATS other than 0/1.
    EXPECT_EQ(vm.nested(kVste0, kVste1 | (1ull << 30), &id), Errno::Io) << "STRW [31:30]";
    EXPECT_EQ(vm.nested(kVste0, kVste1 | (1ull << 44), &id), Errno::Io) << "SHCFG [45:44]";
    EXPECT_EQ(vm.nested(kVste0, kVste1 | (1ull << 19), &id), Errno::Io) << "MEV is the host's";
    EXPECT_EQ(vm.nested(0x1 | (6u << 1), 0, &id), Errno::Io) << "Config S2 translate";
    EXPECT_EQ(vm.nested(0x1 | (7u << 1), 0, &id), Errno::Io) << "Config nested";
    EXPECT_EQ(vm.nested(kVste0, kVste1 | (2ull << 28), &id), Errno::Io) << "EATS 2";
    HwptArmSmmuv3 vste;
    EXPECT_EQ(vm.fd.hwpt_alloc(0, vm.dev, vm.viommu, UserData{HwptDataType::VtdS1, &vste, sizeof(vste)}, &id),
              Errno::Inval) << "another vendor's data";
    EXPECT_EQ(vm.fd.hwpt_alloc(0, vm.dev, vm.viommu, UserData{HwptDataType::ArmSmmuv3, &vste, 8}, &id), Errno::Inval)
        << "shorter than iommu_hwpt_arm_smmuv3";
    // Attach: no vDEVICE for the device (arm_smmu_attach_prepare_vmaster) -> ENOENT.
    uint32_t nested = 0;
    ASSERT_EQ(vm.nested(kVste0, kVste1, &nested), Errno::Ok);
    EXPECT_EQ(vm.fd.attach(vm.dev, nested), Errno::NoEnt);
    uint32_t vdev = 0;
    ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
    // SSIDs in use: the host gave the device's PASID 1 a stage-1 domain -> EBUSY.
    const driver::DomainId s1 = h.make_domain(driver::DomainKind::Stage1);
    IOMMUSIM_ASSERT_OK(h.drv.attach(kRid, 1u, s1));
    EXPECT_EQ(vm.fd.attach(vm.dev, nested), Errno::Busy);
    IOMMUSIM_ASSERT_OK(h.drv.detach(kRid, 1u));
    IOMMUSIM_ASSERT_OK(h.drv.detach(kRid, std::nullopt));
    EXPECT_EQ(vm.fd.attach(vm.dev, nested), Errno::Ok);
    // The host cannot map or invalidate a user-managed domain itself.
    EXPECT_FALSE(h.drv.map(vm.fd.domain_of(nested), 0, kGuestRamPa, 4096, {}, 4096).ok);
    EXPECT_FALSE(h.drv.invalidate_domain(vm.fd.domain_of(nested)).ok);
  });
}

// VFIO_DEVICE_ATTACH_IOMMUFD_PT with a PASID: the iommu core's PASID range, iommufd's
// pasid_compat rules (iommufd_hwpt_pasid_compat), and the SMMU's (arm_smmu_set_pasid: a
// stage-1 domain on a CD table; arm_smmu_nested_ops has no set_dev_pasid).
TEST(Iommufd, PasidAttachFollowsPasidCompat) {
  run_with_vm([](Harness& h, Vm& vm) {
    Iommufd& fd = vm.fd;
    uint32_t plain = 0, pasid_pt = 0, parent_pasid = 0, nested = 0, vdev = 0;
    ASSERT_EQ(fd.hwpt_alloc(0, vm.dev, vm.ioas, UserData{}, &plain), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocPasid, vm.dev, vm.ioas, UserData{}, &pasid_pt), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(vmm::kHwptAllocNestParent | vmm::kHwptAllocPasid, vm.dev, vm.ioas, UserData{},
                            &parent_pasid),
              Errno::Ok);
    EXPECT_EQ(fd.attach(vm.dev, pasid_pt, 0u), Errno::Inval) << "IOMMU_NO_PASID";
    EXPECT_EQ(fd.attach(vm.dev, pasid_pt, 1u << 20), Errno::Inval) << "wider than 20 bits";
    EXPECT_EQ(fd.attach(vm.dev, plain, 1u), Errno::Inval) << "not allocated with ALLOC_PASID";
    EXPECT_EQ(fd.attach(vm.dev, parent_pasid, 1u), Errno::Inval) << "a stage-2 domain on an SSID";
    // The RID on a HWPT without ALLOC_PASID: no PASID may join it.
    ASSERT_EQ(fd.attach(vm.dev, plain), Errno::Ok);
    EXPECT_EQ(fd.attach(vm.dev, pasid_pt, 1u), Errno::Inval);
    ASSERT_EQ(fd.attach(vm.dev, pasid_pt), Errno::Ok) << "replaces the RID's HWPT";
    EXPECT_EQ(fd.users(plain), 0u);
    ASSERT_EQ(fd.attach(vm.dev, pasid_pt, 1u), Errno::Ok);
    EXPECT_EQ(fd.attached_to(vm.dev, 1u), pasid_pt);
    EXPECT_EQ(fd.users(pasid_pt), 2u) << "the RID and PASID 1";
    // With a PASID attached, the RID may not move to a HWPT without ALLOC_PASID.
    EXPECT_EQ(fd.attach(vm.dev, plain), Errno::Inval);
    // A nested HWPT: no ALLOC_PASID on the SMMU, and no PASID attach.
    HwptArmSmmuv3 v;
    v.ste[0] = kVste0;
    v.ste[1] = kVste1;
    const UserData arm{HwptDataType::ArmSmmuv3, &v, sizeof(v)};
    uint32_t id = 0;
    EXPECT_EQ(fd.hwpt_alloc(vmm::kHwptAllocPasid, vm.other, vm.viommu, arm, &id), Errno::OpNotSupp);
    ASSERT_EQ(fd.vdevice_alloc(vm.viommu, vm.other, kVsid, &vdev), Errno::Ok);
    ASSERT_EQ(fd.hwpt_alloc(0, vm.other, vm.viommu, arm, &nested), Errno::Ok);
    EXPECT_EQ(fd.attach(vm.other, nested, 1u), Errno::Inval) << "nested HWPT without ALLOC_PASID";
    EXPECT_EQ(h.drv.attach_nested_pasid(kOtherRid, 1, fd.domain_of(nested)), Errno::OpNotSupp);
    // The other device's RID on the guest's nested domain: a host stage-1 PASID cannot join
    // its STE (the driver refuses; iommufd reports EINVAL).
    ASSERT_EQ(fd.attach(vm.other, nested), Errno::Ok);
    EXPECT_FALSE(h.drv.attach(kOtherRid, 1u, fd.domain_of(pasid_pt)).ok);
    EXPECT_EQ(fd.errors(Call::Attach, Errno::Inval), 7u) << "the seven refused attaches above";
  });
}

// IOMMU_VEVENTQ_ALLOC's checks, in iommufd_veventq_alloc's order, and its hold on the vIOMMU.
TEST(Iommufd, VeventqAllocReturnsLinuxErrnos) {
  run_with_vm([](Harness&, Vm& vm) {
    Iommufd& fd = vm.fd;
    using driver::VeventqType;
    uint32_t q = 0, id = 0;
    EXPECT_EQ(fd.veventq_alloc(1, vm.viommu, VeventqType::ArmSmmuv3, 8, &id), Errno::OpNotSupp) << "flags";
    EXPECT_EQ(fd.veventq_alloc(0, vm.viommu, VeventqType::Default, 8, &id), Errno::OpNotSupp) << "type DEFAULT";
    EXPECT_EQ(fd.veventq_alloc(0, vm.viommu, VeventqType::ArmSmmuv3, 0, &id), Errno::Inval) << "depth 0";
    EXPECT_EQ(fd.veventq_alloc(0, 99, VeventqType::ArmSmmuv3, 8, &id), Errno::NoEnt) << "no such object";
    EXPECT_EQ(fd.veventq_alloc(0, vm.parent, VeventqType::ArmSmmuv3, 8, &id), Errno::NoEnt) << "not a vIOMMU";
    ASSERT_EQ(fd.veventq_alloc(0, vm.viommu, VeventqType::ArmSmmuv3, 8, &q), Errno::Ok);
    EXPECT_EQ(fd.type_of(q), vmm::ObjType::Veventq);
    EXPECT_EQ(fd.veventq_alloc(0, vm.viommu, VeventqType::ArmSmmuv3, 8, &id), Errno::Exist) << "one per type";
    EXPECT_EQ(fd.errors(Call::VeventqAlloc, Errno::OpNotSupp), 2u);
    uint32_t n = 0;
    vmm::Vevent e;
    EXPECT_EQ(fd.veventq_read(vm.viommu, &e, 1, &n), Errno::NoEnt) << "read of a vIOMMU";
    EXPECT_EQ(fd.veventq_read(q, &e, 1, &n), Errno::Ok);
    EXPECT_EQ(n, 0u) << "nothing queued";
    // The vEVENTQ holds its vIOMMU: EBUSY until it goes.
    EXPECT_EQ(fd.destroy(vm.viommu), Errno::Busy);
    EXPECT_EQ(fd.destroy(q), Errno::Ok);
    EXPECT_EQ(fd.destroy(vm.viommu), Errno::Ok);
  });
}

// The queue of a depth-2 vEVENTQ (iommufd_viommu_report_event, iommufd_vevent_handler):
// sequence numbers 0, 1 for two records, then the lost-events header (no record) takes 2
// and, still last, is taken again with 3 by the next loss; after a read makes room, a
// record removes it. With no vEVENTQ of the type, a report is EOPNOTSUPP.
TEST(Iommufd, AFullVeventqKeepsOneLostEventsHeader) {
  run_with_vm([](Harness&, Vm& vm) {
    Iommufd& fd = vm.fd;
    const smmuv3::EventWords rec{0x10, 0, 0x1000, 0};
    EXPECT_EQ(fd.report_event(vm.viommu, driver::VeventqType::ArmSmmuv3, rec.data(), 32, 0), Errno::OpNotSupp);
    uint32_t q = 0, n = 0;
    ASSERT_EQ(fd.veventq_alloc(0, vm.viommu, driver::VeventqType::ArmSmmuv3, 2, &q), Errno::Ok);
    for (int i = 0; i < 4; ++i)
      ASSERT_EQ(fd.report_event(vm.viommu, driver::VeventqType::ArmSmmuv3, rec.data(), 32, 0), Errno::Ok);
    EXPECT_EQ(fd.veventq_pending(q), 2u);
    std::vector<vmm::Vevent> out(4);
    ASSERT_EQ(fd.veventq_read(q, out.data(), 1, &n), Errno::Ok);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(out[0].header.flags, 0u);
    EXPECT_EQ(out[0].header.sequence, 0u);
    EXPECT_EQ(out[0].evt, rec);
    // Room for one: the next record (sequence 4) replaces the lost-events header at the end:
    // the reader sees the loss as the gap from 1 to 4.
    ASSERT_EQ(fd.report_event(vm.viommu, driver::VeventqType::ArmSmmuv3, rec.data(), 32, 0), Errno::Ok);
    ASSERT_EQ(fd.veventq_read(q, out.data(), 4, &n), Errno::Ok);
    ASSERT_EQ(n, 2u);
    EXPECT_EQ(out[0].header.sequence, 1u);
    EXPECT_EQ(out[1].header.flags, 0u);
    EXPECT_EQ(out[1].header.sequence, 4u);
    // Overflow again: 2 records and the header, read at once.
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(fd.report_event(vm.viommu, driver::VeventqType::ArmSmmuv3, rec.data(), 32, 0), Errno::Ok);
    ASSERT_EQ(fd.veventq_read(q, out.data(), 4, &n), Errno::Ok);
    ASSERT_EQ(n, 3u);
    EXPECT_EQ(out[2].header.flags, vmm::kVeventqFlagLostEvents);
    EXPECT_EQ(out[2].header.sequence, 7u);
    EXPECT_EQ(fd.veventq_pending(q), 0u);
  });
}

// vmm.arm_vmid = per_nested_hwpt: each nested HWPT takes a VMID of its own (2, 3, 4 after
// the nest parent's 1), its STE carries it (S2VMID, dword 2 [15:0]), and a guest TLBI_NH_VA
// goes out once per live nested VMID of the vIOMMU: the host cannot tell which HWPT's CD
// holds the ASID. A stage-2 change flushes every VMID over the parent. per_viommu (the
// upstream default) forwards the one command with the parent's VMID.
void expect_tlbi_fanout(driver::ArmNestedVmids policy) {
  {
    const bool per_hwpt = policy == driver::ArmNestedVmids::PerNestedHwpt;
    driver::Smmuv3DriverConfig dc;
    dc.nested_vmids = policy;
    run_with_vm([&](Harness& h, Vm& vm) {
      uint32_t vdev = 0, a = 0, b = 0, c = 0;
      ASSERT_EQ(vm.fd.vdevice_alloc(vm.viommu, vm.dev, kVsid, &vdev), Errno::Ok);
      ASSERT_EQ(vm.nested(kVste0, kVste1, &a), Errno::Ok);
      ASSERT_EQ(vm.nested(kVste0, kVste1, &b), Errno::Ok);
      ASSERT_EQ(vm.nested(kVste0, kVste1, &c), Errno::Ok);
      ASSERT_EQ(vm.fd.attach(vm.dev, b), Errno::Ok);
      EXPECT_EQ(ste_of(h, kRid)[2] & 0xFFFF, per_hwpt ? 3u : 1u) << "S2VMID";
      EXPECT_EQ(h.drv.nested_tags_in_use(), std::optional<uint64_t>(per_hwpt ? 3 : 1));
      ASSERT_EQ(vm.fd.destroy(c), Errno::Ok);   // VMID 4 goes with it
      std::vector<smmuv3::CommandTrace> traces;
      h.smmu.set_command_probe([&](const smmuv3::CommandTrace& t) { traces.push_back(t); });
      const uint64_t base = h.smmu.peek_register(smmuv3::reg::CMDQ_BASE) & ~0x1Full & ((1ull << 52) - 1);
      const uint32_t slots = 1u << driver::Smmuv3DriverConfig{}.cmdq_log2;
      auto word0 = [&](size_t i) {
        uint64_t w[2];
        h.memory.read(base + uint64_t(traces.at(i).queue_index % slots) * 16, w, 16);
        return w[0];
      };
      // TLBI_NH_VA ASID 5 [63:48], VA 0x12345000, leaf; opcode 0x12; VMID [47:32] forced.
      ViommuArmSmmuv3Invalidate e;
      const smmuv3::CmdWords tlbi = smmuv3::cmd_tlbi_nh_va(0, 5, 0x12345000, true);
      e.cmd[0] = tlbi[0];
      e.cmd[1] = tlbi[1];
      uint32_t n = 1;
      ASSERT_EQ(vm.fd.hwpt_invalidate(vm.viommu, InvalidateDataType::ArmSmmuv3, &e, sizeof(e), &n), Errno::Ok);
      if (per_hwpt) {
        ASSERT_EQ(traces.size(), 3u) << "VMIDs 2 and 3, then CMD_SYNC";
        EXPECT_EQ(word0(0), 0x0005000200000012ull);
        EXPECT_EQ(word0(1), 0x0005000300000012ull);
      } else {
        ASSERT_EQ(traces.size(), 2u);
        EXPECT_EQ(word0(0), 0x0005000100000012ull);
      }
      EXPECT_EQ(traces.back().opcode, uint8_t(smmuv3::Opcode::Sync));
      // A host stage-2 unmap: TLBI_NH_ALL (0x10) of every VMID that tags the parent's
      // stage 2 (after that VMID's TLBI_S2_IPAs).
      traces.clear();
      uint64_t unmapped = 0;
      ASSERT_EQ(vm.fd.ioas_unmap(vm.ioas, 0, kGpaBytes, &unmapped), Errno::Ok);
      std::vector<uint64_t> nh_all;
      for (size_t i = 0; i < traces.size(); ++i)
        if (traces[i].opcode == uint8_t(smmuv3::Opcode::TlbiNhAll)) nh_all.push_back(word0(i));
      if (per_hwpt)
        EXPECT_EQ(nh_all, (std::vector<uint64_t>{0x0000000100000010ull, 0x0000000200000010ull, 0x0000000300000010ull}));
      else
        EXPECT_EQ(nh_all, (std::vector<uint64_t>{0x0000000100000010ull}));
    }, dc);
  }
}

TEST(Iommufd, PerViommuVmidForwardsOneTlbi) { expect_tlbi_fanout(driver::ArmNestedVmids::PerViommu); }
TEST(Iommufd, PerNestedHwptVmidsFanOutEveryGuestTlbi) { expect_tlbi_fanout(driver::ArmNestedVmids::PerNestedHwpt); }

}  // namespace
}  // namespace iommusim::test
