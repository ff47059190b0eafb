// The errors of the iommufd calls the VMM makes, as Linux returns them.
//
// What it models: the errno values of the "General ioctl format" comment of
// include/uapi/linux/iommufd.h (ENOTTY: unknown ioctl; E2BIG: struct too large with
// non-zero trailing bytes; EOPNOTSUPP: unsupported flag, type or feature; EINVAL: a bad
// argument; ENOENT: an unknown object ID; plus each call's own), numbered as
// include/uapi/asm-generic/errno-base.h and errno.h number them, so a stat name or a log
// says what a Linux VMM would see.
// What it does not model: errnos no modelled call returns.
// The enumerators are not spelled ENOENT etc. because <cerrno> defines those as macros.
#pragma once
#include <cstdint>

namespace iommusim::vmm {

enum class Errno : int {
  Ok = 0,
  NoEnt = 2,        // ENOENT
  Io = 5,           // EIO
  TooBig = 7,       // E2BIG
  NoMem = 12,       // ENOMEM
  Fault = 14,       // EFAULT
  Busy = 16,        // EBUSY
  Exist = 17,       // EEXIST
  NoDev = 19,       // ENODEV
  Inval = 22,       // EINVAL
  NoSpc = 28,       // ENOSPC
  Overflow = 75,    // EOVERFLOW
  OpNotSupp = 95,   // EOPNOTSUPP
};

// "ENOENT", "EINVAL", ... ("OK" for Ok): the name stats and messages use.
const char* errno_name(Errno e);

}  // namespace iommusim::vmm
