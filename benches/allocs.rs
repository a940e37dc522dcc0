//! `cargo bench --bench allocs`: how many heap allocations one MLP training step makes (the step `steps.rs` times:
//! 16 → n → n → n → 1, the adapter on both hidden maps, r = 8, batch 64, Adam, f64, one thread), how many bytes,
//! and what they cost: the same sequence of `malloc`/`free` calls replayed alone, timed, beside the step's own time.
//!
//! Issue "Studies an order of magnitude faster than a PyTorch script" asks for no allocation in the step loop; this
//! measures how far from that the step is and what reaching it would save. A counting global allocator wraps the
//! system's (glibc, set to keep freed memory as the `singlora` binary does), records every allocation's size and
//! layout during one measured step, and the replay allocates and frees blocks of the same layouts in the same order.
//! That is the allocator's own work (its calls); what the replay cannot see is any cache effect of writing into a
//! block other than the one a reused buffer would be (glibc hands a freed block of the same size back first, so the
//! difference is small), nor page faults, which the kept memory (`alloc::keep_freed_memory`) removes after warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use singlora::adapters::Method;

mod common;
use common::Step;

/// The system allocator, counting (and while `RECORDING`, logging) every allocation.
struct Counting;

static RECORDING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// Layouts allocated while recording, and the order of frees as indices into it (`usize::MAX`: a block allocated
/// before recording started).
static LOG: Mutex<Vec<Event>> = Mutex::new(Vec::new());

#[derive(Clone, Copy)]
enum Event {
    Alloc(usize, usize),
    Free(usize, usize),
}

thread_local! {
    /// Set while the allocator itself is logging, so the log's own growth is not logged.
    static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts and logs `e` unless the allocator is already logging on this thread (the log is reserved in advance, so
/// it does not grow while recording).
fn log(e: Event) {
    INSIDE.with(|inside| {
        if !inside.get() {
            inside.set(true);
            if let Event::Alloc(size, _) = e {
                COUNT.fetch_add(1, Ordering::Relaxed);
                BYTES.fetch_add(size, Ordering::Relaxed);
            }
            LOG.lock().expect("log").push(e);
            inside.set(false);
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if RECORDING.load(Ordering::Relaxed) {
            log(Event::Alloc(layout.size(), layout.align()));
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if RECORDING.load(Ordering::Relaxed) {
            log(Event::Free(layout.size(), layout.align()));
        }
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Replays the logged allocations and frees (frees matched to the latest live block of the same layout) `reps`
/// times; returns seconds per replay.
fn replay(events: &[Event], reps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        let mut live: Vec<(usize, usize, *mut u8)> = Vec::with_capacity(events.len());
        for &e in events {
            match e {
                Event::Alloc(size, align) => {
                    let layout = Layout::from_size_align(size, align).expect("a logged layout");
                    // SAFETY: a valid non-zero layout (Rust never allocates zero bytes through the global allocator).
                    let p = unsafe { System.alloc(layout) };
                    live.push((size, align, p));
                }
                Event::Free(size, align) => {
                    if let Some(i) = live.iter().rposition(|&(s, a, _)| s == size && a == align) {
                        let (s, a, p) = live.swap_remove(i);
                        // SAFETY: `p` was allocated just above with this layout.
                        unsafe {
                            System.dealloc(p, Layout::from_size_align(s, a).expect("layout"))
                        };
                    }
                }
            }
        }
        for (s, a, p) in live {
            // SAFETY: as above.
            unsafe { System.dealloc(p, Layout::from_size_align(s, a).expect("layout")) };
        }
    }
    start.elapsed().as_secs_f64() / reps as f64
}

fn measure(method: Method, n: usize) {
    const STEPS: usize = 20;
    let mut step = Step::<f64>::new(method, n);
    for _ in 0..5 {
        step.run();
    }
    let start = Instant::now();
    for _ in 0..STEPS {
        step.run();
    }
    let seconds = start.elapsed().as_secs_f64() / STEPS as f64;
    {
        let mut log = LOG.lock().expect("log");
        log.clear();
        log.reserve(1 << 20);
    }
    COUNT.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    RECORDING.store(true, Ordering::Relaxed);
    step.run();
    RECORDING.store(false, Ordering::Relaxed);
    let events: Vec<Event> = LOG.lock().expect("log").clone();
    let (count, bytes) = (COUNT.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let reps = (2000 / count.max(1)).clamp(20, 2000);
    let alloc_seconds = replay(&events, reps);
    println!(
        "{:<14} {:>5} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>7.1}%",
        method.name(),
        n,
        count,
        bytes as f64 / 1024.0,
        seconds * 1e6,
        alloc_seconds * 1e6,
        100.0 * alloc_seconds / seconds
    );
}

fn main() {
    singlora::alloc::keep_freed_memory();
    let widths: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let widths = if widths.is_empty() {
        vec![64, 128, 1024]
    } else {
        widths
    };
    println!("one MLP training step, f64, one thread: allocations, their bytes, and the allocator's time replayed alone");
    println!(
        "{:<14} {:>5} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "method", "n", "allocs", "KiB", "step µs", "alloc µs", "share"
    );
    for n in widths {
        for method in Method::ALL {
            measure(method, n);
        }
    }
}
