//! The compiled-tree limit: `leadscore codegen --lang rust` output (included below) built alone with
//! `rustc -O`, natively and for wasm32. `make bench` (benches/compare.mjs) builds and runs both.
//!
//! Native: reads the vectors file given as the first argument (one row per line), scores every row
//! `passes` times (second argument), timing each call, and prints JSON (p50/p99/mean in ns and the
//! first pass's probabilities). wasm32: exports `row_ptr()` (a 64-float input buffer) and
//! `probability()` on it; the node harness times the calls.

#[allow(dead_code)]
mod trees {
    include!(env!("LEADSCORE_TREES_RS"));
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    static mut ROW: [f32; 64] = [0.0; 64];

    /// Where the caller writes one feature row.
    #[no_mangle]
    pub extern "C" fn row_ptr() -> *mut f32 {
        core::ptr::addr_of_mut!(ROW) as *mut f32
    }

    /// Probability of the row in the buffer.
    #[no_mangle]
    pub extern "C" fn probability() -> f32 {
        // SAFETY: see `row_ptr`.
        let row = unsafe { &*core::ptr::addr_of!(ROW) };
        super::trees::probability(row)
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::hint::black_box;
    use std::time::Instant;
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("vectors file");
    let passes: usize = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(6);
    let rows: Vec<Vec<f32>> = text
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse().expect("number")).collect())
        .collect();
    let first: Vec<f32> = rows.iter().map(|r| trees::probability(r)).collect();
    // Warm up, then time every call.
    for r in &rows {
        black_box(trees::probability(black_box(r)));
    }
    let mut ns = Vec::with_capacity(rows.len() * passes);
    let t0 = Instant::now();
    for _ in 0..passes {
        for r in &rows {
            let t = Instant::now();
            black_box(trees::probability(black_box(r)));
            ns.push(t.elapsed().as_nanos() as f64);
        }
    }
    let wall = t0.elapsed().as_nanos() as f64;
    // The same loop without per-call clocks: the mean free of timer overhead.
    let t1 = Instant::now();
    for _ in 0..passes {
        for r in &rows {
            black_box(trees::probability(black_box(r)));
        }
    }
    let mean_untimed = t1.elapsed().as_nanos() as f64 / (rows.len() * passes) as f64;
    ns.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
    let probs: Vec<String> = first.iter().map(|p| format!("{p:?}")).collect();
    let cdf: Vec<String> = (0..=100).map(|i| q(f64::from(i) / 100.0).to_string()).collect();
    println!(
        "{{\"calls\":{},\"p50_ns\":{},\"p99_ns\":{},\"mean_ns\":{},\"wall_mean_ns\":{},\"cdf_ns\":[{}],\"probs\":[{}]}}",
        ns.len(),
        q(0.5),
        q(0.99),
        mean_untimed,
        wall / ns.len() as f64,
        cdf.join(","),
        probs.join(",")
    );
}
