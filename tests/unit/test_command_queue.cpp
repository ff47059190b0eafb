// The command-queue engine with a toy vendor: batch fetch, per-entry timing, wrap-around in
// both pointer conventions, error halt (illegal entry, fetch abort, bad pointer), restart,
// barriers and stats. Times are worked out by hand: a 1 GHz clock (1 ns cycles), 2 decode
// and 4 execution cycles per entry, 10 ns per queue read.
//
// Toy entries are 16 bytes: word 0 bits [7:0] the type (1 = work, 2 = barrier, anything
// else illegal, its type byte the error code), word 1 the extra cycles the entry takes.
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <systemc>

#include "models/common/command_queue.h"
#include "models/common/translation_engine.h"

namespace iommusim::common {
namespace {

constexpr uint8_t kWork = 1, kBarrier = 2;
constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kReadNs = 10;

struct ToyQueue : sc_core::sc_module, CommandQueueVendor {
  SC_HAS_PROCESS(ToyQueue);

  // "Registers"
  bool enabled = true, error = false, wrap_bit = true;
  unsigned log2_entries = 3;            // 8 entries
  uint32_t head = 0, tail = 0;
  uint32_t bad_pointer_code = 0;        // non-zero: queue_state reports BadPointer
  uint64_t fail_read_at = ~0ull;        // a queue read at this address fails

  std::map<uint64_t, uint64_t> memory;  // 8-byte words
  std::vector<QueueError> halts;
  std::vector<uint64_t> halt_ns;
  std::vector<CommandTrace> traces;
  std::vector<uint64_t> consumed_heads;
  Clock clk = Clock::from_mhz(1000);
  TranslationEngine engine;
  CommandQueue queue;
  std::function<void()> body;
  uint64_t pending_cycles = 0;
  uint8_t pending_type = 0;

  explicit ToyQueue(unsigned batch, bool consumer_thread = true) : ToyQueue("toy", batch, consumer_thread) {}
  ToyQueue(sc_core::sc_module_name name, unsigned batch, bool consumer_thread)
      : sc_module(name),
        engine("engine", TranslationEngineConfig{}, clk, [](uint64_t, void*, unsigned, Ps&) { return false; }),
        queue(clk, CommandQueueConfig{batch, 2, 4},
              [this](uint64_t addr, void* dst, unsigned len) {
                sc_core::wait(sc_core::sc_time(double(kReadNs), sc_core::SC_NS));
                if (addr == fail_read_at) return false;
                auto* w = static_cast<uint64_t*>(dst);
                for (unsigned i = 0; i < len / 8; ++i) w[i] = memory[addr + 8 * i];
                return true;
              },
              [this] { engine.drain_older_requests(); }, *this) {
    queue.set_probe([this](const CommandTrace& t) { traces.push_back(t); });
    if (consumer_thread) SC_THREAD(consumer);
    SC_THREAD(test);
  }
  void consumer() { queue.run(); }
  void test() { body(); }
  void run(std::function<void()> b) {
    body = std::move(b);
    sc_core::sc_start(sc_core::sc_time(1, sc_core::SC_MS));
  }

  uint32_t entries() const { return 1u << log2_entries; }
  // Software side: write an entry at the tail and advance it.
  void produce(uint8_t type, uint64_t cycles = 0) {
    const uint64_t a = kBase + uint64_t(tail & (entries() - 1)) * 16;
    memory[a] = type;
    memory[a + 8] = cycles;
    tail = (tail + 1) & ((wrap_bit ? 2 * entries() : entries()) - 1);
  }
  void doorbell() { queue.kick(); }
  static uint64_t now_ns() { return to_ps(sc_core::sc_time_stamp()) / 1000; }

  // CommandQueueVendor
  QueueState queue_state() override {
    QueueState q;
    q.base = kBase;
    q.ring = IndexRing{log2_entries, wrap_bit};
    q.head = head;
    q.tail = tail;
    if (!enabled || error || head == tail) return q;
    if (bad_pointer_code) {
      q.status = QueueState::Status::BadPointer;
      q.error_code = bad_pointer_code;
      return q;
    }
    q.status = QueueState::Status::Ready;
    return q;
  }
  uint8_t trace_opcode(const uint64_t* e) const override { return uint8_t(e[0]); }
  Decoded decode(const uint64_t* e, const QueueState&) override {
    Decoded d;
    d.type = uint8_t(e[0]);
    d.legal = d.type == kWork || d.type == kBarrier;
    d.barrier = d.type == kBarrier;
    if (!d.legal) d.error_code = d.type;
    pending_type = d.type;
    pending_cycles = e[1];
    return d;
  }
  void execute() override {
    if (pending_type == kBarrier) queue.barrier(unsigned(pending_cycles));
    else clk.wait_cycles(pending_cycles);
  }
  void consumed(const QueueState&, uint32_t h) override {
    head = h;
    consumed_heads.push_back(h);
  }
  void halt(const QueueError& e, const QueueState&) override {
    halts.push_back(e);
    halt_ns.push_back(now_ns());
    error = true;
  }
};

TEST(CommandQueue, FetchesInBatchesAndTimesEachEntry) {
  ToyQueue t(/*batch=*/4);
  t.run([&] {
    for (int i = 0; i < 5; ++i) t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 5u);
    // Fetch 4 at 0..10 ns, then each entry 2 decode + 4 execute: ends at 16, 22, 28, 34.
    // The fifth is fetched at 34..44 and ends at 50.
    const uint64_t ends_ns[] = {16, 22, 28, 34, 50};
    for (unsigned i = 0; i < 5; ++i) {
      EXPECT_EQ(t.traces[i].queue_index, i);
      EXPECT_EQ(t.traces[i].opcode, kWork);
      EXPECT_FALSE(t.traces[i].illegal);
      EXPECT_EQ(t.traces[i].first_of_fetch, i == 0 || i == 4);
      EXPECT_EQ(t.traces[i].exec_end_ps, ends_ns[i] * 1000) << "entry " << i;
    }
    EXPECT_EQ(t.traces[4].fetch_start_ps, 34'000u);
    EXPECT_EQ(t.traces[4].fetch_end_ps, 44'000u);
    EXPECT_EQ(t.head, 5u);
    EXPECT_EQ(t.consumed_heads, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    const auto& s = t.queue.stats();
    EXPECT_EQ(s.fetches.value(), 2u);
    EXPECT_EQ(s.executed.value(), 5u);
    EXPECT_EQ(s.by_type[kWork].value(), 5u);
    EXPECT_EQ(s.exec_ps.count(), 5u);
    EXPECT_EQ(s.exec_ps.max(), 4'000u) << "execution time excludes decode";
    EXPECT_EQ(s.errors.value(), 0u);
    EXPECT_TRUE(t.halts.empty());
  });
}

// No consumer thread: the test's thread consumes, as a trapping vCPU runs its emulated queue.
TEST(CommandQueue, RunUntilIdleConsumesInTheCallingThreadAndReturns) {
  ToyQueue t(/*batch=*/4, /*consumer_thread=*/false);
  t.run([&] {
    for (int i = 0; i < 3; ++i) t.produce(kWork);
    t.queue.run_until_idle();
    // Fetch 3 at 0..10 ns, then 2 decode + 4 execute each: the last ends at 28 ns, and the
    // call returns then, with nothing left.
    EXPECT_EQ(ToyQueue::now_ns(), 28u);
    EXPECT_EQ(t.head, 3u);
    ASSERT_EQ(t.traces.size(), 3u);
    t.produce(kWork);
    t.produce(0x7F);   // illegal: halts, and the call returns on the halted queue
    t.produce(kWork);
    t.queue.run_until_idle();
    EXPECT_EQ(t.head, 4u) << "head left on the illegal entry";
    ASSERT_EQ(t.halts.size(), 1u);
    EXPECT_EQ(t.halts[0].head, 4u);
    t.queue.run_until_idle();   // halted: idle at once
    EXPECT_EQ(t.traces.size(), 5u);
    EXPECT_EQ(t.queue.stats().executed.value(), 4u);
  });
}

TEST(CommandQueue, WrapsAroundWithAWrapBit) {
  ToyQueue t(/*batch=*/8);
  t.head = t.tail = 6;   // two slots before the end of an 8-entry ring
  t.run([&] {
    for (int i = 0; i < 4; ++i) t.produce(kWork);
    EXPECT_EQ(t.tail, 10u) << "index 2, wrap bit set";
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 4u);
    // Slots 6 and 7 in one fetch, then slots 0 and 1 (pointers 8, 9) in another.
    const uint32_t pointers[] = {6, 7, 8, 9};
    for (unsigned i = 0; i < 4; ++i) EXPECT_EQ(t.traces[i].queue_index, pointers[i]);
    EXPECT_TRUE(t.traces[0].first_of_fetch);
    EXPECT_TRUE(t.traces[2].first_of_fetch);
    EXPECT_EQ(t.queue.stats().fetches.value(), 2u);
    EXPECT_EQ(t.head, 10u);
  });
}

TEST(CommandQueue, WrapsAroundWithPlainIndices) {
  ToyQueue t(/*batch=*/8);
  t.wrap_bit = false;    // VT-d / AMD convention: one slot stays empty
  t.head = t.tail = 7;
  t.run([&] {
    for (int i = 0; i < 3; ++i) t.produce(kWork);
    EXPECT_EQ(t.tail, 2u);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 3u);
    const uint32_t slots[] = {7, 0, 1};
    for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(t.traces[i].queue_index, slots[i]);
    EXPECT_EQ(t.consumed_heads, (std::vector<uint64_t>{0, 1, 2}));
    EXPECT_EQ(t.queue.stats().fetches.value(), 2u);
  });
}

TEST(CommandQueue, IllegalEntryHaltsAtItUntilRestart) {
  ToyQueue t(/*batch=*/8);
  t.run([&] {
    t.produce(kWork);
    t.produce(0x7F);   // illegal
    t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.halts.size(), 1u);
    EXPECT_EQ(t.halts[0].kind, QueueError::Kind::Illegal);
    EXPECT_EQ(t.halts[0].code, 0x7Fu);
    EXPECT_EQ(t.halts[0].head, 1u);
    EXPECT_EQ(t.halts[0].address, kBase + 16);
    EXPECT_EQ(t.head, 1u) << "the head stays on the illegal entry";
    ASSERT_EQ(t.traces.size(), 2u);
    EXPECT_TRUE(t.traces[1].illegal);
    // Fetch 0..10, entry 0 ends at 16, entry 1 is found illegal after its decode at 18.
    EXPECT_EQ(t.traces[1].exec_end_ps, 18'000u);
    EXPECT_EQ(t.queue.stats().illegal.value(), 1u);
    EXPECT_EQ(t.queue.stats().errors.value(), 1u);
    EXPECT_EQ(t.queue.stats().executed.value(), 1u);

    // A doorbell while the error is pending does nothing.
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    EXPECT_EQ(t.traces.size(), 2u);

    // Software's recovery: replace the bad entry, acknowledge, ring.
    t.memory[kBase + 16] = kWork;
    t.error = false;
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 4u);
    EXPECT_EQ(t.traces[2].queue_index, 1u);
    EXPECT_TRUE(t.traces[2].first_of_fetch) << "the restart fetches again from the bad entry";
    EXPECT_EQ(t.head, 3u);
    EXPECT_EQ(t.queue.stats().executed.value(), 3u);
  });
}

TEST(CommandQueue, FailedFetchHaltsWithTheBatchAddress) {
  ToyQueue t(/*batch=*/8);
  t.fail_read_at = kBase + 2 * 16;
  t.head = t.tail = 2;
  t.run([&] {
    t.produce(kWork);
    t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.halts.size(), 1u);
    EXPECT_EQ(t.halts[0].kind, QueueError::Kind::FetchAbort);
    EXPECT_EQ(t.halts[0].head, 2u);
    EXPECT_EQ(t.halts[0].address, kBase + 32);
    EXPECT_TRUE(t.traces.empty());
    EXPECT_EQ(t.head, 2u);
    EXPECT_EQ(t.queue.stats().fetches.value(), 1u);
    EXPECT_EQ(t.queue.stats().errors.value(), 1u);
    EXPECT_EQ(t.queue.stats().illegal.value(), 0u);
    t.fail_read_at = ~0ull;
    t.error = false;
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    EXPECT_EQ(t.traces.size(), 2u);
    EXPECT_EQ(t.head, 4u);
  });
}

TEST(CommandQueue, BadPointerHaltsBeforeAnyFetch) {
  ToyQueue t(/*batch=*/8);
  t.bad_pointer_code = 6;
  t.run([&] {
    t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.halts.size(), 1u);
    EXPECT_EQ(t.halts[0].kind, QueueError::Kind::BadPointer);
    EXPECT_EQ(t.halts[0].code, 6u);
    EXPECT_EQ(t.queue.stats().fetches.value(), 0u);
    EXPECT_EQ(t.queue.stats().errors.value(), 1u);
    ASSERT_EQ(t.halt_ns.size(), 1u);
    EXPECT_EQ(t.halt_ns[0], 0u) << "raised at the doorbell, before any fetch time";
    EXPECT_TRUE(t.traces.empty());
  });
}

TEST(CommandQueue, DisabledQueueWaitsForEnableAndDoorbell) {
  ToyQueue t(/*batch=*/8);
  t.enabled = false;
  t.run([&] {
    t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
    EXPECT_TRUE(t.traces.empty());
    t.enabled = true;
    t.doorbell();
    sc_core::wait(sc_core::sc_time(100, sc_core::SC_NS));
    ASSERT_EQ(t.traces.size(), 1u);
    // Enabled at 100 ns: fetch 100..110, decode 112, execute ends 116.
    EXPECT_EQ(t.traces[0].exec_end_ps, 116'000u);
  });
}

TEST(CommandQueue, BarrierTimeIsRecordedApart) {
  ToyQueue t(/*batch=*/8);
  t.run([&] {
    t.produce(kWork, 10);     // 4 + 10 cycles
    t.produce(kBarrier, 5);   // 4 + 5 cycles (no translation in flight to wait for)
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 2u);
    // Fetch 10, decode 12, work ends 26; decode 28, barrier ends 37.
    EXPECT_EQ(t.traces[0].exec_end_ps, 26'000u);
    EXPECT_EQ(t.traces[1].exec_end_ps, 37'000u);
    const auto& s = t.queue.stats();
    EXPECT_EQ(s.barriers.value(), 1u);
    EXPECT_EQ(s.barrier_ps.count(), 1u);
    EXPECT_EQ(s.barrier_ps.max(), 9'000u);
    EXPECT_EQ(s.exec_ps.count(), 2u);
    EXPECT_EQ(s.exec_ps.sum(), 23'000u);
    EXPECT_EQ(s.by_type[kWork].value(), 1u);
    EXPECT_EQ(s.by_type[kBarrier].value(), 1u);
  });
}

TEST(CommandQueue, BarrierWaitsForRequestsOlderThanTheLastInvalidation) {
  ToyQueue t(/*batch=*/8);
  t.run([&] {
    auto dma = std::make_unique<InflightRequest>(&t.engine);   // a DMA in flight...
    t.engine.begin_epoch();                                     // ...overtaken by an invalidation
    t.produce(kBarrier, 5);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(50, sc_core::SC_NS));
    EXPECT_TRUE(t.traces.empty()) << "the barrier must wait for the older DMA";
    dma.reset();   // the DMA completes at 50 ns
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
    ASSERT_EQ(t.traces.size(), 1u);
    // Fetch 10, decode 12, fixed execution 16, drained at 50, then 5 cycles: 55 ns.
    EXPECT_EQ(t.traces[0].exec_end_ps, 55'000u);
    EXPECT_EQ(t.queue.stats().barrier_ps.max(), 43'000u);
  });
}

TEST(CommandQueue, RegistersFetchesAndPerTypeCounts) {
  ToyQueue t(/*batch=*/8);
  StatRegistry reg;
  t.queue.register_stats(reg, "toy.queue", {{kWork, "work"}, {kBarrier, "barrier"}});
  t.run([&] {
    t.produce(kWork);
    t.produce(kWork);
    t.doorbell();
    sc_core::wait(sc_core::sc_time(1, sc_core::SC_US));
  });
  ASSERT_NE(reg.find_counter("toy.queue.fetches"), nullptr);
  EXPECT_EQ(reg.find_counter("toy.queue.fetches")->value(), 1u);
  ASSERT_NE(reg.find_counter("toy.queue.executed.work"), nullptr);
  EXPECT_EQ(reg.find_counter("toy.queue.executed.work")->value(), 2u);
  EXPECT_EQ(reg.find_counter("toy.queue.executed.barrier")->value(), 0u);
}

}  // namespace
}  // namespace iommusim::common
