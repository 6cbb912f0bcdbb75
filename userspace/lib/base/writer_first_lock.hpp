// writer_first_lock.hpp — a reader-writer lock whose writer is not starved.
//
// glibc's default rwlock (and so std::shared_mutex) lets new readers in while
// a writer waits; under a steady stream of readers the writer may wait
// forever. Here a waiting writer holds new readers back. The price: a reader
// must never take it twice (a writer waiting between the two would deadlock).
// Meets SharedLockable, for std::shared_lock and std::unique_lock.
#pragma once
#include <pthread.h>

namespace nvrfs {

class WriterFirstLock {
public:
    WriterFirstLock() {
        pthread_rwlockattr_t a;
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&l_, &a);
        pthread_rwlockattr_destroy(&a);
    }
    ~WriterFirstLock() { pthread_rwlock_destroy(&l_); }
    WriterFirstLock(const WriterFirstLock&) = delete;
    WriterFirstLock& operator=(const WriterFirstLock&) = delete;

    void lock() { pthread_rwlock_wrlock(&l_); }
    void unlock() { pthread_rwlock_unlock(&l_); }
    void lock_shared() { pthread_rwlock_rdlock(&l_); }
    void unlock_shared() { pthread_rwlock_unlock(&l_); }

private:
    pthread_rwlock_t l_;
};

}  // namespace nvrfs
