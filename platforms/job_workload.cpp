// sc_spawn: the workloads' CPU threads.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "platforms/job_workload.h"

#include <cmath>

namespace iommusim::platforms {

// Hands the workload each completion with the endpoint it came from.
class JobWorkload::Queue : public traffic::JobQueue {
 public:
  Queue(JobWorkload& w, size_t endpoint, size_t capacity) : JobQueue(capacity), w_(w), endpoint_(endpoint) {}
  void job_done(unsigned, const traffic::DmaJob& job, traffic::DmaStats::Outcome outcome) override {
    w_.job_done(endpoint_, job, outcome);
  }

 private:
  JobWorkload& w_;
  size_t endpoint_;
};

JobWorkload::JobWorkload(driver::DriverBase& drv, size_t endpoints, size_t queue_capacity) : drv_(drv) {
  for (size_t i = 0; i < endpoints; ++i) queues_.push_back(std::make_unique<Queue>(*this, i, queue_capacity));
}

JobWorkload::~JobWorkload() = default;

traffic::JobSource& JobWorkload::source(size_t endpoint) { return *queues_.at(endpoint); }

void JobWorkload::push(size_t endpoint, const traffic::DmaJob& job) {
  if (!queues_.at(endpoint)->push(job))
    fail("endpoint " + std::to_string(endpoint) + ": DMA queue full (" + std::to_string(queues_[endpoint]->capacity()) +
         " jobs)");
}

void JobWorkload::close_queues() {
  for (auto& q : queues_) q->close();
}

void JobWorkload::spawn(const std::string& name, std::function<void()> body) {
  ++running_;
  sc_core::sc_spawn(
      [this, body = std::move(body)] {
        body();
        --running_;
        left_.notify(sc_core::SC_ZERO_TIME);
      },
      sc_core::sc_gen_unique_name(name.c_str()));
}

void JobWorkload::join() {
  while (running_) sc_core::wait(left_);
}

void JobWorkload::run_cpus(const std::string& name, unsigned cpus, double duration_us, const driver::DmaApi& api,
                           const std::function<void(unsigned)>& cpu, const std::function<void()>& first) {
  start_ = common::now_ps();
  end_ = start_ + common::Ps(std::llround(duration_us * 1e6));
  if (first) first();
  for (unsigned c = 0; c < cpus; ++c) spawn(name, [cpu, c] { cpu(c); });
  join();
  if (const std::string& t = api.timer_error(); !t.empty()) fail("dma_api flush timer: " + t);
  finished_ = common::now_ps();
  close_queues();
}

void JobWorkload::fail(const std::string& why) {
  if (failure_.empty()) failure_ = why;
  wake_.notify(sc_core::SC_ZERO_TIME);
}

driver::Status JobWorkload::attach_new_domain(uint32_t rid, std::optional<uint32_t> pasid, driver::DomainId* domain) {
  std::string why;
  const auto d = drv_.create_domain(driver::DomainKind::Stage1, std::nullopt, &why);
  if (!d) return driver::Status::fail(why);
  if (driver::Status s = drv_.attach(rid, pasid, *d); !s.ok) return s;
  *domain = *d;
  return {};
}

}  // namespace iommusim::platforms
