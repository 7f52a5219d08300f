// Kernel registration for the emulation: each k_*.cpp includes one kernel
// source and names its kernels with GD_REGISTER; the parameter types come
// from the function itself, so a launch unpacks a void** argument array the
// way the CUDA driver does.
#ifndef GIDEDGE_EMU_REGISTRY_H
#define GIDEDGE_EMU_REGISTRY_H

#include <cstddef>
#include <type_traits>
#include <utility>

namespace gidedge_emu {

using Invoke = void (*)(void (*fn)(), void** args);

int add(const char* name, void (*fn)(), Invoke invoke, const unsigned* sizes, int count);

template <typename... A>
struct Invoker {
	template <std::size_t... I>
	static void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
		k(*static_cast<typename std::decay<A>::type*>(args[I])...);
	}
	static void invoke(void (*fn)(), void** args) {
		call(reinterpret_cast<void (*)(A...)>(fn), args, std::index_sequence_for<A...>{});
	}
	static constexpr unsigned sizes[sizeof...(A) + 1] = {static_cast<unsigned>(sizeof(A))..., 0};
};

template <typename... A>
int add_kernel(const char* name, void (*k)(A...)) {
	return add(name, reinterpret_cast<void (*)()>(k), &Invoker<A...>::invoke, Invoker<A...>::sizes, static_cast<int>(sizeof...(A)));
}

}  // namespace gidedge_emu

#define GD_REGISTER(k) static const int gd_registered_##k = ::gidedge_emu::add_kernel(#k, k);

#endif
