// Random-command fuzzing shared by the three vendors' fuzz tests (test_<vendor>_fuzz.cpp).
//
// After the driver has set a few devices up, the fuzzer takes the command queue over and
// runs rounds. Each round, while a second thread keeps issuing DMAs:
//   A. sometimes writes random values to random registers (holes included), lets the model
//      run a little, then puts the registers back as the driver left them (Ops::restore,
//      which also empties the queue and acknowledges errors);
//   B. corrupts a few live table words (STE/CD, context/PASID entries, DTE/GCR3, page-table
//      entries: the non-zero words of the driver's table pools) by bit flips, random
//      values or zeroes;
//   C. queues a batch of commands: valid ones with random fields, bit-flipped ones and
//      random words; rings the doorbell (sometimes twice) and waits, in simulated time, until
//      the queue has consumed everything or shows its architected error. An error is
//      acknowledged as a driver would (the bad entry is replaced by a harmless command and
//      the queue restarted), a bounded number of times. Neither by the deadline is a failure.
//      In a few "chaos" rounds random registers are rewritten while the batch runs instead;
//      the queue may then legitimately stop, so only crashes and hangs count.
// Then the table pages get their old contents back and the next round begins with a
// full invalidation. Everything derives from the seed, so a seed replays exactly.
//
// A vendor supplies an Ops class (see run_fuzz) with its set-up, registers and commands.
#pragma once
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>
#include <tlm>

#include "models/memory/sparse_memory.h"

namespace iommusim::fuzz {

// splitmix64: the same sequence with every compiler and standard library.
class Rng {
 public:
  // The seed is mixed first: seeds n and n+1 must not give shifted copies of one sequence.
  explicit Rng(uint64_t seed) : s_(mix(seed ^ 0x632BE59BD9B4E019ull)) {}
  uint64_t next() { return mix(s_ += 0x9E3779B97F4A7C15ull); }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  uint64_t bits(unsigned n) { return n >= 64 ? next() : next() & ((uint64_t{1} << n) - 1); }
  template <class T> const T& pick(const std::vector<T>& v) { return v[size_t(below(v.size()))]; }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t s_;
};

// Flips 1..3 random bits anywhere in the entry.
template <size_t N>
void flip_bits(Rng& r, std::array<uint64_t, N>& w) {
  const unsigned n = 1 + unsigned(r.below(3));
  for (unsigned i = 0; i < n; ++i) w[r.below(N)] ^= uint64_t{1} << r.below(64);
}

// A corrupted table word: a flipped bit or two, a random value, or zero.
inline uint64_t corrupt_word(Rng& r, uint64_t v) {
  switch (r.below(6)) {
    case 0: case 1: return v ^ (uint64_t{1} << r.below(64));
    case 2: return v ^ (uint64_t{1} << r.below(64)) ^ (uint64_t{1} << r.below(64));
    case 3: return r.next();
    case 4: return 0;
    default: return v ^ (uint64_t{1} << r.below(12));   // the low (valid, type, mode) bits
  }
}

struct Region {
  uint64_t base = 0, bytes = 0;
  bool contains(uint64_t a) const { return a >= base && a - base < bytes; }
};

// The 8-byte-aligned non-zero words of `scan` outside `exclude`: the live table entries.
inline std::vector<uint64_t> live_words(const memory::SparseMemory& m, const std::vector<Region>& scan,
                                        const std::vector<Region>& exclude) {
  std::vector<uint64_t> out;
  std::array<uint64_t, 512> page;
  for (const Region& r : scan) {
    for (uint64_t p = r.base; p < r.base + r.bytes; p += 4096) {
      m.read(p, page.data(), 4096);
      for (unsigned i = 0; i < page.size(); ++i) {
        const uint64_t a = p + 8ull * i;
        if (page[i] == 0) continue;
        bool skip = false;
        for (const Region& x : exclude) skip = skip || x.contains(a);
        if (!skip) out.push_back(a);
      }
    }
  }
  return out;
}

// One register access through a TLM socket; any response is acceptable to the fuzzer.
template <class Socket>
tlm::tlm_response_status mmio_access(Socket& s, bool write, uint64_t off, uint64_t& v, unsigned len) {
  tlm::tlm_generic_payload p;
  p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
  p.set_address(off);
  p.set_data_ptr(reinterpret_cast<unsigned char*>(&v));
  p.set_data_length(len);
  p.set_streaming_width(len);
  p.set_byte_enable_ptr(nullptr);
  p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
  sc_core::sc_time d = sc_core::SC_ZERO_TIME;
  s->b_transport(p, d);
  if (d != sc_core::SC_ZERO_TIME) sc_core::wait(d);
  return p.get_response_status();
}
template <class Socket>
void mmio_write(Socket& s, uint64_t off, uint64_t v, unsigned len) {
  const auto st = mmio_access(s, true, off, v, len);
  EXPECT_EQ(st, tlm::TLM_OK_RESPONSE) << "MMIO write at " << off;
}

// A DMA the set-up made valid (or not: the fuzzer also sends some the tables never mapped).
struct DmaTarget {
  uint32_t rid = 0;
  std::optional<uint32_t> pasid;
  uint64_t iova = 0;
};

struct Counters {
  uint64_t rounds = 0, commands = 0, valid_commands = 0, flipped_commands = 0, random_commands = 0,
           queue_errors = 0, error_rounds = 0, chaos_rounds = 0, register_writes = 0, corruptions = 0, dmas = 0, dma_errors = 0;
};

// Seed sets: the short one runs in the default ctest, the long one under the label `long`
// (its instances are named Long/..., see tests/CMakeLists.txt).
struct FuzzParams {
  uint64_t seed = 1;
  unsigned rounds = 50;
};
inline std::vector<FuzzParams> short_seeds() { return {{1, 1000}, {2, 1000}, {3, 1000}}; }
inline std::vector<FuzzParams> long_seeds() {
  std::vector<FuzzParams> v;
  for (uint64_t s = 101; s <= 116; ++s) v.push_back({s, 20000});
  return v;
}
inline std::string seed_name(const ::testing::TestParamInfo<FuzzParams>& i) {
  return "seed" + std::to_string(i.param.seed);
}
inline void PrintTo(const FuzzParams& p, std::ostream* os) { *os << "seed " << p.seed << ", " << p.rounds << " rounds"; }
// IOMMUSIM_FUZZ_ROUNDS=N overrides the rounds of every seed (to hunt with more).
inline FuzzParams with_env(FuzzParams p) {
  if (const char* e = std::getenv("IOMMUSIM_FUZZ_ROUNDS")) p.rounds = unsigned(std::strtoul(e, nullptr, 10));
  return p;
}

// Timing of a round, in simulated time.
struct FuzzTiming {
  sc_core::sc_time poll{100, sc_core::SC_NS};          // queue state polled this often (no MMIO time)
  sc_core::sc_time queue_deadline{200, sc_core::SC_US};  // consumed or error by then
  sc_core::sc_time dma_deadline{200, sc_core::SC_US};    // the DMA thread ends by then
  unsigned max_recoveries = 8;                           // errors acknowledged per round
  unsigned max_batch = 24;                               // commands per round (queue has >= 256)
};

// What a vendor supplies (H is the fixture's harness, Ops this interface):
//   void setup(H&, std::vector<DmaTarget>&)   driver init, domains, maps, attaches
//   std::vector<Region> table_regions(H&)    where live table words are searched
//   std::vector<Region> queue_regions(H&)    queues and logs: never corrupted
//   void snapshot(H&)                        remember the registers the driver set
//   void restore(H&)                         registers back, queue empty, errors acked
//   std::vector<uint64_t> registers()        offsets of the register file
//   uint64_t mmio_bytes()                    size of the register window
//   std::vector<uint64_t> valid_command(Rng&)     an entry the driver could write
//   std::vector<uint64_t> flush_all()        entries that invalidate every cache
//   void push(H&, const std::vector<uint64_t>&)  write the entry at the software tail
//   void doorbell(H&)                        publish the software tail
//   bool consumed(H&)                        the queue's head caught up with its tail
//   bool error(H&, std::string* what)        the architected queue error is visible
//   void recover(H&)                         replace the bad entry, acknowledge, restart
//   uint64_t opcode_mask()                   the opcode bits of an entry's first word
//   std::string state(H&)                    queue registers, for a failure message
template <class H, class Ops>
class Fuzzer {
 public:
  Fuzzer(H& h, Ops& ops, const FuzzParams& p, const char* vendor, FuzzTiming t = {})
      : h_(h), ops_(ops), p_(with_env(p)), vendor_(vendor), t_(t), rng_(p.seed), dma_rng_(p.seed ^ 0xD3A5EEDull) {}

  void run() {
    ops_.setup(h_, targets_);
    if (::testing::Test::HasFatalFailure()) return;
    live_ = live_words(h_.memory, ops_.table_regions(h_), ops_.queue_regions(h_));
    ASSERT_FALSE(live_.empty()) << "no live table words found";
    for (uint64_t a : live_) {
      const uint64_t page = a & ~uint64_t{4095};
      if (pages_.count(page)) continue;
      h_.memory.read(page, pages_[page].data(), 4096);
    }
    ops_.snapshot(h_);
    sc_core::sc_spawn([this] { dma_thread(); }, "fuzz_dma");
    for (unsigned r = 0; r < p_.rounds && !::testing::Test::HasFailure(); ++r) round(r);
    stop_dmas_ = true;
    if (!dma_done_) sc_core::wait(t_.dma_deadline, dma_done_ev_);
    EXPECT_TRUE(dma_done_) << "a DMA did not complete within " << t_.dma_deadline;
    print();
  }

  const Counters& counters() const { return c_; }

 private:
  void round(unsigned r) {
    ++c_.rounds;
    // A: random register writes, then the driver's registers back and an empty queue.
    if (rng_.chance(35)) random_register_writes();
    ops_.restore(h_);
    // Start from the tables: every cache invalidated (checked like any batch).
    for (const auto& e : ops_.flush_all()) ops_.push(h_, e);
    ops_.doorbell(h_);
    if (!drain(r, "flush")) return;

    // B: corrupt a few live table words.
    const unsigned k = unsigned(rng_.below(4));
    for (unsigned i = 0; i < k; ++i) {
      const uint64_t a = rng_.pick(live_);
      h_.memory.write64(a, corrupt_word(rng_, h_.memory.read64(a)));
      ++c_.corruptions;
    }
    // C: a batch of commands, published in one or two doorbells.
    const unsigned n = 1 + unsigned(rng_.below(t_.max_batch));
    const unsigned split = rng_.chance(30) ? unsigned(rng_.below(n)) : n;
    for (unsigned i = 0; i < n; ++i) {
      ops_.push(h_, command());
      if (i + 1 == split) {
        ops_.doorbell(h_);
        sc_core::wait(sc_core::sc_time(double(rng_.below(500)), sc_core::SC_NS));
      }
    }
    ops_.doorbell(h_);
    c_.commands += n;
    if (rng_.chance(8)) {
      // Chaos: registers rewritten while the batch runs. The queue may legitimately stop
      // (disabled, moved, pointers rewritten), so only crashes and hangs count here; the
      // next round's restore puts everything back.
      sc_core::wait(sc_core::sc_time(double(rng_.below(300)), sc_core::SC_NS));
      random_register_writes();
      sc_core::wait(t_.queue_deadline / 4);
      ++c_.chaos_rounds;
    } else {
      drain(r, "commands");
    }
    // The table pages as the driver left them: undoes this round's corruptions, and any
    // store a command or a DMA through a corrupted table made into them.
    for (const auto& [page, bytes] : pages_) h_.memory.write(page, bytes.data(), 4096);
  }

  // 1..3 writes of random values (or the current value with a bit flipped) to registers,
  // sometimes to the upper half of one or to any offset of the window (holes included).
  void random_register_writes() {
    const std::vector<uint64_t> regs = ops_.registers();
    const unsigned n = 1 + unsigned(rng_.below(3));
    for (unsigned i = 0; i < n; ++i) {
      const uint64_t off = rng_.chance(85) ? rng_.pick(regs) + (rng_.chance(10) ? 4 : 0)
                                           : rng_.below(ops_.mmio_bytes()) & ~uint64_t{3};
      const unsigned len = (off & 7) == 0 && rng_.chance(50) ? 8 : 4;
      uint64_t cur = 0;
      mmio_access(h_.drv.mmio, false, off, cur, len);
      uint64_t v = rng_.chance(50) ? rng_.next() : cur ^ (uint64_t{1} << rng_.below(len * 8));
      mmio_access(h_.drv.mmio, true, off, v, len);
      ++c_.register_writes;
      sc_core::wait(sc_core::sc_time(double(rng_.below(2000)), sc_core::SC_NS));
    }
  }

  std::vector<uint64_t> command() {
    std::vector<uint64_t> w = ops_.valid_command(rng_);
    const unsigned kind = unsigned(rng_.below(10));
    if (kind < 5) {
      ++c_.valid_commands;
    } else if (kind < 8) {
      const unsigned flips = 1 + unsigned(rng_.below(3));
      for (unsigned i = 0; i < flips; ++i) w[rng_.below(w.size())] ^= uint64_t{1} << rng_.below(64);
      ++c_.flipped_commands;
    } else {
      for (auto& x : w) x = rng_.next();
      const uint64_t op = ops_.opcode_mask();   // half of them keep a real opcode
      if (rng_.chance(50)) w[0] = (w[0] & ~op) | (ops_.valid_command(rng_)[0] & op);
      ++c_.random_commands;
    }
    return w;
  }

  // Waits until the queue is consumed (true) or shows its architected error; errors are
  // recovered a bounded number of times. A queue that is neither by the deadline fails.
  bool drain(unsigned round, const char* phase) {
    const sc_core::sc_time deadline = sc_core::sc_time_stamp() + t_.queue_deadline;
    unsigned recoveries = 0;
    for (;;) {
      if (ops_.consumed(h_)) return true;
      std::string what;
      if (ops_.error(h_, &what)) {
        ++c_.queue_errors;
        if (++recoveries > t_.max_recoveries) { ++c_.error_rounds; return true; }
        ops_.recover(h_);
        continue;
      }
      if (sc_core::sc_time_stamp() >= deadline) {
        ADD_FAILURE() << vendor_ << " seed " << p_.seed << " round " << round << " (" << phase
                      << "): the queue neither drained nor reported an error within " << t_.queue_deadline
                      << ": " << ops_.state(h_);
        return false;
      }
      sc_core::wait(t_.poll);
    }
  }

  void dma_thread() {
    while (!stop_dmas_) {
      DmaTarget t = dma_rng_.pick(targets_);
      bool write = dma_rng_.chance(30);
      if (dma_rng_.chance(10)) {   // anything: unknown device, PASID, address (reads only)
        t.rid = uint32_t(dma_rng_.bits(dma_rng_.chance(50) ? 4 : 16));
        if (dma_rng_.chance(30)) t.pasid = uint32_t(dma_rng_.bits(dma_rng_.chance(50) ? 3 : 20));
        t.iova = dma_rng_.bits(dma_rng_.chance(50) ? 24 : 64) & ~uint64_t{7};
        write = false;
      } else {
        t.iova += dma_rng_.below(512) * 8;
      }
      const auto res = h_.dma(t.rid, t.pasid, t.iova, write, dma_rng_.next());
      ++c_.dmas;
      if (!res.ok()) ++c_.dma_errors;
      sc_core::wait(sc_core::sc_time(double(dma_rng_.below(300)), sc_core::SC_NS));
    }
    dma_done_ = true;
    dma_done_ev_.notify();
  }

  void print() {
    std::printf("fuzz %s seed %" PRIu64 ": %" PRIu64 " rounds (%" PRIu64 " chaos), %" PRIu64 " commands (%" PRIu64 " valid, %" PRIu64
                " bit-flipped, %" PRIu64 " random; %" PRIu64 " queue errors), %" PRIu64 " register writes, %" PRIu64
                " table corruptions, %" PRIu64 " DMAs (%" PRIu64 " failed), %.1f us simulated\n",
                vendor_, p_.seed, c_.rounds, c_.chaos_rounds, c_.commands, c_.valid_commands, c_.flipped_commands,
                c_.random_commands, c_.queue_errors, c_.register_writes, c_.corruptions, c_.dmas, c_.dma_errors,
                sc_core::sc_time_stamp().to_seconds() * 1e6);
    std::fflush(stdout);
    ::testing::Test::RecordProperty("fuzz_rounds", std::to_string(c_.rounds));
    ::testing::Test::RecordProperty("fuzz_commands", std::to_string(c_.commands));
  }

  H& h_;
  Ops& ops_;
  FuzzParams p_;
  const char* vendor_;
  FuzzTiming t_;
  Rng rng_, dma_rng_;
  Counters c_;
  std::vector<DmaTarget> targets_;
  std::vector<uint64_t> live_;
  std::map<uint64_t, std::array<uint8_t, 4096>> pages_;   // the pages holding live words
  bool stop_dmas_ = false, dma_done_ = false;
  sc_core::sc_event dma_done_ev_;
};

// Simulated time a whole seed may take (the harness's limit).
inline sc_core::sc_time fuzz_limit(FuzzParams p) {
  p = with_env(p);
  return sc_core::sc_time(5.0 * (p.rounds + 10), sc_core::SC_MS);
}

}  // namespace iommusim::fuzz
