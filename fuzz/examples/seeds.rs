//! Writes the seed corpus of each fuzz target into fuzz/corpus/<target>/:
//! small, valid inputs of each format that the fuzzer mutates from.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds

use std::fs;
use std::path::Path;

use prost::Message;
use sifa_agent::dates::parse_day;
use sifa_agent::outbox::{self, Outbox};
use sifa_aggregator::wal;
use sifa_proto::v1::{Provenance, Report, SubmitRequest};
use sifa_proto::{Catalog, Registry};
use sifa_sim::xlsx_writer::{self, XCell};

fn report(unit: &str, period: &str, revision: u64) -> Report {
    Report {
        unit_code: unit.into(),
        period: period.into(),
        revision,
        values: [("disputes_mediated", 12.0), ("disputes_resolved", 11.0), ("consultations", 30.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        comment: Some("春节前后纠纷较多".into()),
        generated_at_ms: 1_711_000_000_000,
        generator: "sifa-agent/0.1".into(),
    }
}

const LEDGER: &str = "序号,日期,类别,事项,结果,人数,备注\n1,2024-01-05,人民调解,邻里纠纷,调解成功,2,\n2,2024-01-20,人民调解,\"婚姻,家庭\",调解不成功,2,\n3,2024-02-03,法律咨询,土地承包,已解答,3,\n";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    };
    let office = SubmitRequest { report: Some(report("620902001", "2024-03", 1)), provenance: None };
    let forwarded = SubmitRequest {
        report: Some(report("620902002", "2024-02", 2)),
        provenance: Some(Provenance { first_accepted_by: "620902".into(), received_at_ms: 1_711_000_100_000 }),
    };
    put("submit_request", "office", &office.encode_to_vec());
    put("submit_request", "forwarded", &forwarded.encode_to_vec());

    put("ledger_csv", "utf8", LEDGER.as_bytes());
    let (gbk, _, _) = encoding_rs::GBK.encode(LEDGER);
    put("ledger_csv", "gbk", &gbk);
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<XCell>> = LEDGER
        .lines()
        .map(|l| {
            l.split(',')
                .map(|c| match (c.parse::<f64>(), parse_day(c)) {
                    (Ok(n), _) => XCell::Number(n),
                    (_, Some(d)) => XCell::Date(d),
                    _ if c.is_empty() => XCell::Empty,
                    _ => XCell::Text(c.to_string()),
                })
                .collect()
        })
        .collect();
    let xlsx = tmp.path().join("台账.xlsx");
    xlsx_writer::write(&xlsx, "台账", &rows).unwrap();
    put("ledger_xlsx", "small", &fs::read(&xlsx).unwrap());

    let registry: String = Registry::demo().to_csv().lines().take(24).map(|l| format!("{l}\n")).collect();
    put("registry", "demo-head", registry.as_bytes());
    put("catalog", "builtin", Catalog::builtin().source().as_bytes());

    let mut frames = Vec::new();
    wal::encode_frame(&office, &mut frames);
    wal::encode_frame(&forwarded, &mut frames);
    put("wal_replay", "two-records", &[&[1u8][..], &frames].concat());
    put("wal_replay", "framed-payloads", &[&[2u8][..], &office.encode_to_vec(), &[0xFF], b"tail"].concat());

    let dir = tmp.path().join("outbox");
    let mut ob = Outbox::open(&dir, "620902001").unwrap();
    ob.enqueue(office.report.as_ref().unwrap()).unwrap();
    ob.save().unwrap();
    let state = fs::read(dir.join(outbox::STATE_FILE)).unwrap();
    let queued = outbox::list_queue(&dir).unwrap();
    let file = fs::read(&queued[0].path).unwrap();
    let body = &file[outbox::MAGIC.len() + 4..];
    put("outbox", "queued-and-state", &[&[1u8][..], body, &[0xFF], b"", &[0xFF], &state].concat());
}
