//! `sifa-agent status`: the queue, the last acknowledgements, rejections,
//! retries and the problems of the last reading of the books, in plain
//! Chinese and English. Reads the outbox without locking it, so it works
//! while the daemon runs.

use std::fmt::Write;

use crate::config::Config;
use crate::outbox::{self, OutboxError};

pub use sifa_proto::period::format_cst as format_time;

fn outcome_zh(outcome: &str) -> &'static str {
    match outcome {
        "accepted" => "已接收",
        "duplicate" => "已接收(重复)",
        "rejected" => "被退回",
        _ => "?",
    }
}

/// The status text of the office's outbox.
pub fn render(config: &Config) -> Result<String, OutboxError> {
    let dir = &config.outbox_dir;
    let state = outbox::read_state(dir)?;
    let queue = outbox::list_queue(dir)?;
    let rejected = outbox::list_rejected(dir)?;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "司法所 {} 上报状态 / Status of office {}", config.unit, config.unit);
    let _ = writeln!(w, "汇总节点 Aggregator: {}", config.aggregator);
    let _ = writeln!(w, "发件箱 Outbox: {}", dir.display());
    let _ = writeln!(w);

    let _ = writeln!(w, "待发送 Waiting to be sent: {} 份 report(s)", queue.len());
    const SHOWN: usize = 20;
    for q in queue.iter().take(SHOWN) {
        let kind = if q.revision > 1 { "更正 correction" } else { "首次 first" };
        let _ = writeln!(w, "  {} 第{}版 rev {}  ({kind})", q.period, q.revision, q.revision);
    }
    if queue.len() > SHOWN {
        let _ = writeln!(w, "  … 另有 {} 份 and {} more", queue.len() - SHOWN, queue.len() - SHOWN);
    }
    let r = &state.retry;
    if let Some(why) = &r.refused {
        let _ = writeln!(
            w,
            "  汇总节点拒绝本所的证书，报表无法送达 / The aggregator {} refuses this office's certificate ({why}): \
             the certificate may be revoked or expired; ask the county for a new one (`sifa pki issue --role office \
             --unit {}`) and replace [tls] cert and key. Until then delivery is tried only rarely (next at {}).",
            config.aggregator,
            config.unit,
            format_time(r.next_attempt_ms)
        );
    }
    if r.failures > 0 {
        let _ = writeln!(
            w,
            "  连续 {} 次发送失败，下次尝试 {} / {} failed attempt(s) in a row, next attempt at {}",
            r.failures,
            format_time(r.next_attempt_ms),
            r.failures,
            format_time(r.next_attempt_ms)
        );
        if let Some(e) = &r.last_error {
            let _ = writeln!(w, "  最近错误 Last error: {e}");
        }
    }
    if let Some(t) = r.last_success_ms {
        let _ = writeln!(w, "  最近一次成功连接 Last successful delivery: {}", format_time(t));
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "最近确认 Last acknowledgements:");
    if state.recent_acks.is_empty() {
        let _ = writeln!(w, "  （无 none）");
    }
    for a in state.recent_acks.iter().rev().take(10) {
        let _ = writeln!(
            w,
            "  {} 第{}版 rev {}  {} {}  {}",
            a.period,
            a.revision,
            a.revision,
            outcome_zh(&a.outcome),
            a.outcome,
            format_time(a.at_ms)
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "被退回的报表 Rejected reports: {}", rejected.len());
    for rec in &rejected {
        let _ = writeln!(
            w,
            "  {} 第{}版 rev {}  {} (gRPC code {})",
            rec.period,
            rec.revision,
            rec.revision,
            format_time(rec.rejected_at_ms),
            rec.code
        );
        for p in &rec.problems {
            let _ = writeln!(w, "    - {} [{}]", p.message, p.rule);
        }
    }
    if !rejected.is_empty() {
        let _ = writeln!(
            w,
            "  请更正台账后重新运行；退回原因保存在 {}。/ Correct the ledger and run again; the reasons are kept in {}.",
            dir.join(outbox::REJECTED_DIR).display(),
            dir.join(outbox::REJECTED_DIR).display()
        );
    }
    let _ = writeln!(w);

    match &state.last_collection {
        None => {
            let _ = writeln!(w, "台账尚未读取 The books have not been read yet.");
        }
        Some(c) => {
            let _ = writeln!(
                w,
                "最近读取台账 Books last read: {} (目录 catalog {})",
                format_time(c.at_ms),
                c.catalog_version
            );
            if let Some(e) = &c.error {
                let _ = writeln!(w, "  配置错误 Config error: {e}");
            }
            if c.queued.is_empty() {
                let _ = writeln!(w, "  无新数据 Nothing new to send.");
            } else {
                let _ = writeln!(w, "  新排队 Newly queued: {}", c.queued.join(", "));
            }
            if !c.held.is_empty() {
                let _ = writeln!(
                    w,
                    "  暂缓上报的月份 Months held back until the ledger is fixed: {}",
                    c.held.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            if let Some(drop) = c.held.values().flatten().find(|w| w.starts_with(crate::drops::FALL_AWAY)) {
                let _ = writeln!(w, "  待确认 Held for confirmation: {drop}");
            }
            if !c.problems.is_empty() {
                let _ = writeln!(w, "  台账问题 Problems in the ledger ({}):", c.problems.len());
                for p in c.problems.iter().take(50) {
                    let _ = writeln!(w, "    - {p}");
                }
                if c.problems.len() > 50 {
                    let _ = writeln!(w, "    … 另有 {} 条 and {} more", c.problems.len() - 50, c.problems.len() - 50);
                }
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_china_standard_time() {
        // 2024-03-05T06:30:00Z is 14:30 in Beijing.
        assert_eq!(format_time(1_709_620_200_000), "2024-03-05 14:30");
    }
}
