// CPU feature dispatch. Every compute kernel exists in three builds of the same leaf code:
// AVX-512 (F+VL+DQ+BW), AVX2+FMA, and portable C++. The best one the CPU supports is chosen
// at load time; MIXTUNE_ISA=avx512|avx2|portable (or setIsa() from JS) forces a lower one,
// which is how the tests exercise every path on one machine.
#pragma once

namespace mt {

enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

Isa best_isa();            // what the CPU supports
Isa current_isa();         // what kernels use now
bool set_isa(Isa isa);     // false if the CPU cannot run it
const char* isa_name(Isa isa);

}  // namespace mt
