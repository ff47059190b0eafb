// main() for every test binary. SystemC warnings and errors become test failures, and
// every TEST runs in its own process (ctest via gtest_discover_tests), because a process
// can elaborate and run only one SystemC simulation.
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <systemc>

namespace {
void fail_on_report(const sc_core::sc_report& rep, const sc_core::sc_actions& actions) {
  if (rep.get_severity() >= sc_core::SC_WARNING) {
    ADD_FAILURE() << "SystemC " << (rep.get_severity() == sc_core::SC_WARNING ? "warning" : "error") << " ["
                  << rep.get_msg_type() << "]: " << rep.get_msg();
    if (rep.get_severity() >= sc_core::SC_ERROR) throw std::runtime_error(rep.get_msg());
    return;
  }
  sc_core::sc_report_handler::default_handler(rep, actions);
}
}  // namespace

int sc_main(int argc, char** argv) {
  sc_core::sc_report_handler::set_handler(fail_on_report);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// Our own main (the executable's symbol wins over libsystemc's) so the banner is off
// before SystemC starts; gtest_discover_tests parses our stdout.
int main(int argc, char** argv) {
  setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 1);
  return sc_core::sc_elab_and_sim(argc, argv);
}
