#include "platforms/vmm/errno.h"

namespace iommusim::vmm {

const char* errno_name(Errno e) {
  switch (e) {
    case Errno::Ok: return "OK";
    case Errno::NoEnt: return "ENOENT";
    case Errno::Io: return "EIO";
    case Errno::TooBig: return "E2BIG";
    case Errno::NoMem: return "ENOMEM";
    case Errno::Fault: return "EFAULT";
    case Errno::Busy: return "EBUSY";
    case Errno::Exist: return "EEXIST";
    case Errno::NoDev: return "ENODEV";
    case Errno::Inval: return "EINVAL";
    case Errno::NoSpc: return "ENOSPC";
    case Errno::Overflow: return "EOVERFLOW";
    case Errno::OpNotSupp: return "EOPNOTSUPP";
  }
  return "E?";
}

}  // namespace iommusim::vmm
