#include "identity.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <random>

#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

std::string host_name() {
    std::array<char, 256> buffer{};
    if (gethostname(buffer.data(), buffer.size() - 1) != 0) return "unknown";
    return buffer.data();
}

std::string user_name() {
    const uid_t uid = geteuid();
    std::array<char, 4096> buffer{};
    passwd entry{};
    passwd* found = nullptr;
    if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr)
        return found->pw_name;
    return std::to_string(uid);
}

}  // namespace

ProcessIdentity current_process() {
    return ProcessIdentity{host_name(), static_cast<std::int64_t>(getpid()), user_name()};
}

std::string new_run_id() {
    // One generator per process, seeded from the OS; reseeded after fork() so that parent
    // and child never draw the same ids.
    static std::mutex mutex;
    static std::mt19937_64 generator;
    static pid_t seeded_for = 0;
    std::array<std::uint8_t, 16> bytes{};
    {
        std::lock_guard lock(mutex);
        if (seeded_for != getpid()) {
            std::random_device device;
            std::seed_seq seed{device(), device(), device(), device(),
                               static_cast<unsigned>(getpid())};
            generator.seed(seed);
            seeded_for = getpid();
        }
        const std::uint64_t high = generator();
        const std::uint64_t low = generator();
        for (int i = 0; i < 8; ++i) {
            bytes[i] = static_cast<std::uint8_t>(high >> (8 * i));
            bytes[8 + i] = static_cast<std::uint8_t>(low >> (8 * i));
        }
    }
    const auto millis =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    for (int i = 0; i < 6; ++i) bytes[i] = static_cast<std::uint8_t>(millis >> (8 * (5 - i)));
    bytes[6] = static_cast<std::uint8_t>(0x70 | (bytes[6] & 0x0F));  // version 7
    bytes[8] = static_cast<std::uint8_t>(0x80 | (bytes[8] & 0x3F));  // RFC 4122 variant
    char text[37];
    std::snprintf(text, sizeof text,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                  bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8],
                  bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
    return text;
}

bool process_may_be_alive(const std::string& host, std::int64_t pid) {
    static const std::string this_host = host_name();
    if (host != this_host || pid <= 0) return true;
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

}  // namespace checkpoint::detail
