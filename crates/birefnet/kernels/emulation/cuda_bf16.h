// The host emulation provides the half types (cuda_host.h).
#pragma once
#include "cuda_host.h"
