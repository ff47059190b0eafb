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
  // Where the DMA's time went, filled by the IOMMU front end (summed over the pages it was
  // given) and kept by a root complex for the page that completed last: translation, and
  // the memory access. The rest of the device's latency is its link and root complex.
  uint64_t translation_ps = 0;
  uint64_t memory_ps = 0;
  // A TranslationRequest's completion (PCIe 6.0 §10.2.3): the translated page and the
  // rights granted (R, W). The request itself is a read; a write command asks for write
  // permission too (No Write = 0).
  uint64_t translated_addr = 0;
  bool granted_read = false, granted_write = false;

  tlm::tlm_extension_base* clone() const override { return new DmaAttributes(*this); }
  void copy_from(const tlm::tlm_extension_base& other) override {
    *this = static_cast<const DmaAttributes&>(other);
  }
};

}  // namespace iommusim::common
