// Runs a body on several simulated CPUs at once (SystemC threads started together), for
// tests of concurrent driver paths. Call from inside a running simulation.
#pragma once
#ifndef SC_INCLUDE_DYNAMIC_PROCESSES
#define SC_INCLUDE_DYNAMIC_PROCESSES   // sc_spawn; must precede the first SystemC header
#endif
#include <functional>
#include <memory>

#include <systemc>

namespace iommusim::test {

// Runs `body(cpu)` in `cpus` threads started at the same time, and waits for all.
inline void on_cpus(unsigned cpus, const std::function<void(unsigned)>& body) {
  auto running = std::make_shared<unsigned>(cpus);
  auto done = std::make_shared<sc_core::sc_event>();
  for (unsigned cpu = 0; cpu < cpus; ++cpu)
    sc_core::sc_spawn([=] { body(cpu); if (--*running == 0) done->notify(sc_core::SC_ZERO_TIME); });
  while (*running) sc_core::wait(*done);
}

}  // namespace iommusim::test
