//! The machine's RSA-2048 bound for `agreements bench`: `openssl speed` before and after the
//! load, the `openssl` crate's figures beside it, and the run's ratios against it.

use std::time::{Duration, Instant};

use agreements_client::load::{Plan, Report};
use agreements_protocol::{PrivateKey, PublicKey, SignType};

/// The machine's RSA-2048 bound: `openssl speed` (every core, then one sign and one verify on
/// one thread), measured right before and right after the load; beside it the same figures
/// through the `openssl` crate in this process, as the server signs.
pub struct Bound {
    threads: usize,
    key: PrivateKey,
    public: PublicKey,
    signature: String,
}

/// One measurement of the bound.
#[derive(Debug, Clone, Copy)]
struct Speed {
    /// RSA-2048 signs per second with every core signing.
    signs_on_all_cores: f64,
    /// Seconds of one sign on one thread.
    one_sign: f64,
    /// Seconds of one verify on one thread.
    one_verify: f64,
}

impl Speed {
    fn mean(a: Self, b: Self) -> Self {
        Self {
            signs_on_all_cores: (a.signs_on_all_cores + b.signs_on_all_cores) / 2.0,
            one_sign: (a.one_sign + b.one_sign) / 2.0,
            one_verify: (a.one_verify + b.one_verify) / 2.0,
        }
    }
}

/// The bound measured before the load: `openssl speed`'s, or the crate's when the tool is
/// missing.
pub struct Before {
    speed: Speed,
    from_openssl_speed: bool,
}

/// What the run measured beside its answers, each when it could.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// The server's CPU seconds per answer (`--server-pid`).
    pub server_cpu: Option<f64>,
    /// The load generator's CPU seconds per answer (this process).
    pub generator_cpu: Option<f64>,
    /// The share of answers the server signed from memory (its signature cache's metrics).
    pub from_memory: Option<f64>,
}

/// The ratio of answers/s to signs/s that the throughput target asks for, every answer distinct.
const THROUGHPUT_TARGET: f64 = 0.86;

/// Where a closed-loop run's core time per answer went, against what the throughput target
/// leaves beside the sign: `threads` cores answering `answers_per_second` give each answer
/// `threads ÷ answers_per_second` of core time; the bound's sign on every core takes
/// `threads ÷ signs/s` of it, and at [`THROUGHPUT_TARGET`] of the bound everything else (the
/// verify, HTTP, the store, the load generator, the kernel) may take only the rest. This is the
/// arithmetic behind the target, with this run's figures, so that each run says how far its
/// other work is from it. It holds only when every answer was signed: one signed from memory
/// takes no sign, and the split is left out.
fn shares(threads: usize, answers_per_second: f64, bound: Speed, measured: Measured) -> String {
    if let Some(share) = measured.from_memory.filter(|&s| s > 0.0) {
        return format!(
            "each answer's core time: not split, {:.1} % of the answers were signed from memory \
             (turn the signature cache off to split it)\n",
            100.0 * share
        );
    }
    let micros = |seconds: f64| seconds * 1e6;
    let cores = threads as f64;
    let per_answer = cores / answers_per_second;
    let sign = cores / bound.signs_on_all_cores;
    let allowed = cores / (THROUGHPUT_TARGET * bound.signs_on_all_cores) - sign;
    let mut out = format!(
        "each answer's core time: {threads} cores ÷ {answers_per_second:.0} answers/s = {:.0} µs, \
         of which the sign on every core {:.0} µs (the bound) and everything else {:.0} µs; \
         at {THROUGHPUT_TARGET} of the bound everything else may take {:.0} µs\n",
        micros(per_answer),
        micros(sign),
        micros(per_answer - sign),
        micros(allowed),
    );
    if let (Some(server), Some(generator)) = (measured.server_cpu, measured.generator_cpu) {
        out.push_str(&format!(
            "  everything else: the verify {:.0} µs, the server's other work {:.0} µs, the load \
             generator {:.0} µs, the rest {:.0} µs (idle cores, the kernel's work outside \
             both processes, and a sign on every core against one on one thread)\n",
            micros(bound.one_verify),
            micros(server - bound.one_sign - bound.one_verify),
            micros(generator),
            micros(per_answer - server - generator - (sign - bound.one_sign)),
        ));
    }
    out
}

/// Signed in the bound: about as long as a typical request's string-to-sign.
const MESSAGE: &[u8] =
    b"agreements bench: the string-to-sign of a typical request, about this long";
/// How long each of the crate's rates is measured.
const BOUND_WINDOW: Duration = Duration::from_secs(1);

impl Bound {
    pub fn new() -> anyhow::Result<Self> {
        let key = PrivateKey::generate(2048)?;
        let public = key.public_key()?;
        let signature = key.sign(SignType::Rsa2, MESSAGE)?;
        Ok(Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            key,
            public,
            signature,
        })
    }

    /// `openssl speed` now, or the crate's figures when the tool is missing.
    pub fn measure(&self) -> Before {
        match openssl_speed(self.threads) {
            Some(speed) => Before {
                speed,
                from_openssl_speed: true,
            },
            None => Before {
                speed: self.crate_speed(),
                from_openssl_speed: false,
            },
        }
    }

    /// The bound through the `openssl` crate, as the server signs and verifies.
    fn crate_speed(&self) -> Speed {
        let sign = || {
            let _ = self.key.sign(SignType::Rsa2, MESSAGE);
        };
        Speed {
            signs_on_all_cores: rate_on_threads(self.threads, BOUND_WINDOW, sign),
            one_sign: 1.0 / rate_on_threads(1, BOUND_WINDOW, sign),
            one_verify: 1.0
                / rate_on_threads(1, BOUND_WINDOW / 2, || {
                    let _ = self.public.verify(SignType::Rsa2, MESSAGE, &self.signature);
                }),
        }
    }

    /// The bound after the run (`before` was measured before it), the crate's figures beside
    /// it, and the ratios of the run against the bound's mean.
    pub fn report(
        &self,
        before: &Before,
        report: &Report,
        plan: &Plan,
        measured: Measured,
    ) -> String {
        let threads = self.threads;
        let after = if before.from_openssl_speed {
            openssl_speed(threads).unwrap_or(before.speed)
        } else {
            self.crate_speed()
        };
        let bound = Speed::mean(before.speed, after);
        let source = if before.from_openssl_speed {
            format!("openssl speed -multi {threads} rsa2048, then openssl speed rsa2048")
        } else {
            "openssl speed is not installed: the openssl crate in this process".to_owned()
        };
        let mut out = format!(
            "machine bound ({source}; before and after the run): {:.0} signs/s on {threads} cores \
             ({:.0} before, {:.0} after); one sign {:.0} µs, one verify {:.1} µs on one thread\n",
            bound.signs_on_all_cores,
            before.speed.signs_on_all_cores,
            after.signs_on_all_cores,
            bound.one_sign * 1e6,
            bound.one_verify * 1e6,
        );
        if before.from_openssl_speed {
            let ours = self.crate_speed();
            out.push_str(&format!(
                "  beside it, the openssl crate in this process: {:.0} signs/s on {threads} threads; \
                 one sign {:.0} µs, one verify {:.1} µs\n",
                ours.signs_on_all_cores,
                ours.one_sign * 1e6,
                ours.one_verify * 1e6,
            ));
        }
        if plan.rate.is_none() {
            out.push_str(&format!(
                "ratio: answers/s ÷ signs/s = {:.2} (target ≥ {THROUGHPUT_TARGET} with every \
                 answer distinct; above 1.00 only when the signature cache answers)\n",
                report.throughput() / bound.signs_on_all_cores
            ));
        }
        if let Some(server) = measured.server_cpu {
            out.push_str(&format!(
                "ratio: server CPU per answer ÷ (one sign + one verify) = {:.2} (target ≤ 1.08)\n",
                server / (bound.one_sign + bound.one_verify)
            ));
        }
        if plan.rate.is_none() {
            out.push_str(&shares(threads, report.throughput(), bound, measured));
        }
        if plan.rate.is_some() {
            let times = |q| {
                report
                    .quantile(q)
                    .map_or(f64::NAN, |d| d.as_secs_f64() / bound.one_sign)
            };
            out.push_str(&format!(
                "ratio: p99 ÷ one sign = {:.1} (target ≤ 3.5); p99.9 ÷ one sign = {:.1} (target ≤ 6.0)\n",
                times(0.99),
                times(0.999)
            ));
        }
        out
    }
}

/// Operations per second of `op` run on `threads` threads for `window`.
fn rate_on_threads(threads: usize, window: Duration, op: impl Fn() + Sync) -> f64 {
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while started.elapsed() < window {
                        op();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// `openssl speed -multi N -seconds 2 rsa2048`'s sign rate and `openssl speed -seconds 1
/// rsa2048`'s sign and verify times, when the tool is installed.
fn openssl_speed(threads: usize) -> Option<Speed> {
    let multi = speed_line(&["-multi", &threads.to_string(), "-seconds", "2"])?;
    let single = speed_line(&["-seconds", "1"])?;
    Some(Speed {
        signs_on_all_cores: multi.signs_per_second,
        one_sign: single.sign_seconds,
        one_verify: single.verify_seconds,
    })
}

/// The `rsa 2048 bits` line of `openssl speed`: `rsa 2048 bits 0.000275s 0.000015s 3642.3 66707.8`.
#[derive(Debug, PartialEq)]
struct SpeedLine {
    sign_seconds: f64,
    verify_seconds: f64,
    signs_per_second: f64,
}

fn speed_line(args: &[&str]) -> Option<SpeedLine> {
    let out = std::process::Command::new("openssl")
        .arg("speed")
        .args(args)
        .arg("rsa2048")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_speed_line(&String::from_utf8_lossy(&out.stdout))
}

fn parse_speed_line(text: &str) -> Option<SpeedLine> {
    let line = text.lines().rfind(|l| l.starts_with("rsa 2048 bits"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let seconds = |i: usize| fields.get(i)?.strip_suffix('s')?.parse().ok();
    Some(SpeedLine {
        sign_seconds: seconds(3)?,
        verify_seconds: seconds(4)?,
        signs_per_second: fields.get(5)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_time_per_answer_is_shared_out() {
        let bound = Speed {
            signs_on_all_cores: 2_000.0,
            one_sign: 0.000_950,
            one_verify: 0.000_030,
        };
        let measured = Measured {
            server_cpu: Some(0.001_100),
            generator_cpu: Some(0.000_040),
            from_memory: Some(0.0),
        };
        // 2 cores ÷ 1,600 answers/s = 1,250 µs; the sign on every core 1,000 µs; at 0.86
        // everything else may take 2 ÷ 1,720 − 0.001 = 163 µs.
        let text = shares(2, 1_600.0, bound, measured);
        assert!(
            text.starts_with(
                "each answer's core time: 2 cores ÷ 1600 answers/s = 1250 µs, of which the sign \
                 on every core 1000 µs (the bound) and everything else 250 µs; at 0.86 of the \
                 bound everything else may take 163 µs\n"
            ),
            "{text}"
        );
        // The server's 1,100 µs less the sign (950) and the verify (30); the rest: 1,250 − 1,100
        // − 40 − (1,000 − 950).
        assert!(
            text.ends_with(
                "everything else: the verify 30 µs, the server's other work 120 µs, the load \
                 generator 40 µs, the rest 60 µs (idle cores, the kernel's work outside both \
                 processes, and a sign on every core against one on one thread)\n"
            ),
            "{text}"
        );
        let alone = shares(2, 1_600.0, bound, Measured::default());
        assert_eq!(alone.lines().count(), 1, "{alone}");
        // With answers signed from memory there is no sign to set the rest against.
        let cached = Measured {
            from_memory: Some(0.25),
            ..measured
        };
        assert_eq!(
            shares(2, 1_600.0, bound, cached),
            "each answer's core time: not split, 25.0 % of the answers were signed from memory \
             (turn the signature cache off to split it)\n"
        );
    }

    #[test]
    fn openssl_speed_output_is_read() {
        let text = "Doing 2048 bits private rsa's for 1s: 3642 2048 bits private RSA's in 1.00s\n\
                    version: 3.0.19\n\
                                      sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.000275s 0.000015s   3642.3  66707.8\n";
        assert_eq!(
            parse_speed_line(text),
            Some(SpeedLine {
                sign_seconds: 0.000275,
                verify_seconds: 0.000015,
                signs_per_second: 3642.3,
            })
        );
        assert_eq!(parse_speed_line("rsa 2048 bits broken"), None);
        assert_eq!(parse_speed_line(""), None);
    }
}
