// The one sideband extension every iommusim socket understands (and any other TLM-2.0
// component may ignore): who issued a DMA and in what context.
#pragma once
#include <cstdint>

#include <tlm>

namespace iommusim::common {

enum class AtsType : uint8_t {
  Untranslated = 0,        // ordinary DMA, translated by the IOMMU
  TranslationRequest = 1,  // ATS translation request from a device ATC
  Translated = 2,          // DMA carrying an address the device already translated
};

// Outcome written back by an IOMMU so initiators can tell a fault from a bus error.
enum class IommuResponse : uint8_t { None = 0, Ok, Fault, Aborted };

struct DmaAttributes : tlm::tlm_extension<DmaAttributes> {
  uint32_t requester_id = 0;   // PCIe RID / SMMU StreamID / AMD DeviceID
  bool pasid_valid = false;    // SubstreamID valid (SMMU SSV)
  uint32_t pasid = 0;
  bool privileged = false;
  bool instruction = false;
  AtsType ats = AtsType::Untranslated;
  IommuResponse response = IommuResponse::None;
  // Written back by an IOMMU: the annotated time (ps) at which the translation of the
  // access's first page ended, so a trace can split the DMA into translation and memory.
  // 0: not translated (refused before translation). A probe, not a PCIe field.
  uint64_t translated_ps = 0;

  tlm::tlm_extension_base* clone() const override { return new DmaAttributes(*this); }
  void copy_from(const tlm::tlm_extension_base& other) override {
    *this = static_cast<const DmaAttributes&>(other);
  }
};

}  // namespace iommusim::common
