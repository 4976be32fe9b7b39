//! Realistic, deterministic books of a judicial office for the demo and the
//! tests: a case ledger (台账, one row per case or activity, with the headers
//! offices write: 序号, 日期, 类别, 事项, 结果, 人数, 方式, 经办人, 备注), a totals
//! sheet (月度汇总) with the stocks, and the agent config whose mapping turns
//! the rows into the catalog's statistics.
//!
//! Magnitudes follow docs/DOMAIN.md: about 1.4 mediations a year per 1,000
//! inhabitants (the demo's nine Dunhuang towns resolve 400+ a year together;
//! a town of 100,000 mediates about 140, Shandong's average), ~88% resolved,
//! a few by video; consultations, legal aid, opinions and legality reviews for the
//! town government, education events and lectures, "legal literates" trained
//! (~330 a year), community-correction intakes and releases that keep the
//! register in the totals sheet consistent, resettlement help, and the odd
//! missing person located. Stocks: 2–3 authorised posts, contracted staff,
//! judicial assistants, floor area mostly ≥ 100 m², villages and villages
//! with a legal adviser, a star rating of 3–5.
//!
//! The same (unit, year, seed) always gives the same books, byte for byte:
//! the generator uses its own PRNG (SplitMix64), not a library whose stream
//! may change between versions. `until_month` writes the year up to that
//! month (month-to-date for the current month: its rows up to `until_day`);
//! a later month is the same books with more rows appended. `corrections`
//! change one row of an earlier month (a mediation later reached agreement,
//! or a late consultation entry), which the agent sends as a new revision.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sifa_agent::config::{ConfigFile, CountRule, LedgerSource, OneOrMany, TotalsSource};
use sifa_agent::dates::Day;
use sifa_proto::tls::TlsConfig;
use sifa_proto::{Period, Unit};

use crate::xlsx_writer::{self, XCell};

/// How an office keeps its books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFormat {
    /// CSV in UTF-8 (Excel's "CSV UTF-8", with a byte-order mark).
    CsvUtf8,
    /// CSV in GBK (plain "CSV" from Excel on Chinese Windows).
    CsvGbk,
    /// An Excel workbook.
    Xlsx,
}

impl LedgerFormat {
    pub fn extension(self) -> &'static str {
        match self {
            LedgerFormat::Xlsx => "xlsx",
            _ => "csv",
        }
    }
}

impl std::str::FromStr for LedgerFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" | "csv-utf8" | "utf8" => Ok(LedgerFormat::CsvUtf8),
            "csv-gbk" | "gbk" => Ok(LedgerFormat::CsvGbk),
            "xlsx" => Ok(LedgerFormat::Xlsx),
            _ => Err(format!("unknown ledger format {s:?}: use csv-utf8, csv-gbk or xlsx")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub year: u16,
    pub seed: u64,
    /// Write months 1..=until_month (1–12).
    pub until_month: u8,
    /// In `until_month`, write rows up to this day only (month to date); default the whole month.
    pub until_day: Option<u8>,
    /// None: chosen per office from the seed (mostly UTF-8 CSV, some GBK, a few xlsx).
    pub format: Option<LedgerFormat>,
    /// Months (≤ until_month) in which one row is corrected.
    pub corrections: Vec<u8>,
}

impl SynthSpec {
    pub fn year(year: u16, seed: u64) -> SynthSpec {
        SynthSpec { year, seed, until_month: 12, until_day: None, format: None, corrections: vec![] }
    }
}

/// One row of the case ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    pub seq: usize,
    pub day: Day,
    pub category: &'static str,
    pub matter: String,
    pub outcome: String,
    pub people: u32,
    pub mode: &'static str,
    pub handler: String,
    pub note: String,
}

/// An office's generated books.
#[derive(Debug, Clone)]
pub struct OfficeBooks {
    pub unit_code: String,
    pub format: LedgerFormat,
    pub cases: Vec<CaseRow>,
    /// Per month: (catalog code, value) in the totals sheet's column order.
    pub totals: BTreeMap<Period, Vec<(&'static str, f64)>>,
}

/// Case ledger headers.
pub const CASE_HEADERS: [&str; 9] = ["序号", "日期", "类别", "事项", "结果", "人数", "方式", "经办人", "备注"];

/// Totals sheet columns after 月份: catalog code and the Chinese header written.
pub const TOTALS_COLUMNS: [(&str, &str); 15] = [
    ("correction_subjects", "在册社区矫正对象"),
    ("staff_authorized", "政法专项编制"),
    ("staff_actual", "实有在编人数"),
    ("staff_contracted", "购买服务聘用人员"),
    ("judicial_assistants", "司法协理员"),
    ("mediators_fulltime", "专职人民调解员"),
    ("office_area_m2", "业务用房面积"),
    ("mediation_committees", "人民调解委员会"),
    ("mediation_studios", "个人调解工作室"),
    ("service_rooms", "公共法律服务工作室"),
    ("villages_total", "辖区村(社区)数"),
    ("villages_with_adviser", "配备法律顾问的村(社区)数"),
    ("star_rating", "星级评定"),
    ("fengqiao_style", "枫桥式司法所"),
    ("investment_yuan", "建设投入"),
];

/// Column header → the values a row must have there.
type Conditions = &'static [(&'static str, &'static [&'static str])];

/// The mapping from ledger rows to statistics (the `[[ledger.count]]` tables): per statistic, the
/// column values a row must have, and the column summed instead of counting rows (人数: person-times).
const MAPPING: &[(&str, Conditions, Option<&str>)] = &[
    // One row per screening round.
    ("disputes_screened", &[("类别", &["矛盾纠纷排查"])], None),
    // Every dispute logged under 人民调解 was received; those with an outcome were mediated.
    ("disputes_received", &[("类别", &["人民调解"])], None),
    ("disputes_mediated", &[("类别", &["人民调解"]), ("结果", &["调解成功", "调解不成功"])], None),
    ("disputes_resolved", &[("类别", &["人民调解"]), ("结果", &["调解成功"])], None),
    ("video_mediations", &[("类别", &["人民调解"]), ("结果", &["调解成功", "调解不成功"]), ("方式", &["视频"])], None),
    ("consultations", &[("类别", &["法律咨询"])], Some("人数")),
    ("legal_aid_cases", &[("类别", &["法律援助"])], None),
    ("legal_opinions", &[("类别", &["法律意见"])], None),
    ("legality_reviews", &[("类别", &["合法性审查"])], None),
    ("education_events", &[("类别", &["法治宣传"])], None),
    ("lectures", &[("类别", &["法治讲座"])], None),
    ("legal_literates_trained", &[("类别", &["法律明白人培训"])], Some("人数")),
    ("staff_training_attendances", &[("类别", &["业务培训"])], Some("人数")),
    // One row per person entering or leaving community correction.
    ("corrections_received", &[("类别", &["社区矫正"]), ("事项", &["入矫报到"])], None),
    ("corrections_released", &[("类别", &["社区矫正"]), ("事项", &["解除矫正"])], None),
    ("released_prisoners_assisted", &[("类别", &["安置帮教"])], Some("人数")),
    ("missing_persons_located", &[("类别", &["查找失联人员"])], Some("人数")),
];

/// The `[[ledger.count]]` rules that turn the generated ledger's rows into the catalog's statistics.
pub fn mapping() -> Vec<CountRule> {
    MAPPING
        .iter()
        .map(|(metric, conditions, sum)| CountRule {
            metric: metric.to_string(),
            conditions: conditions
                .iter()
                .map(|(column, values)| {
                    let value = match values {
                        [one] => OneOrMany::One(one.to_string()),
                        many => OneOrMany::Many(many.iter().map(|v| v.to_string()).collect()),
                    };
                    (column.to_string(), value)
                })
                .collect(),
            sum: sum.map(String::from),
        })
        .collect()
}

/// SplitMix64: small, fast, and its stream never changes (the books, and the tests' seeded cases).
pub struct Rng(u64);

impl Rng {
    /// Seeded by `parts` (e.g. a unit code, a seed, a purpose).
    pub fn new(parts: &[&[u8]]) -> Rng {
        // FNV-1a over the parts, then mixed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in parts {
            for b in p.iter().chain(&[0xffu8]) {
                h ^= *b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Rng(h)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in lo..=hi.
    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % (hi - lo + 1) as u64) as u32
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    /// A Poisson draw with mean `lambda` (Knuth; the means here are small).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            // Normal approximation for the few large means.
            let u1 = self.f().max(1e-12);
            let u2 = self.f();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (lambda + z * lambda.sqrt()).round().max(0.0) as u32;
        }
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= self.f();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
}

const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "马", "孙", "朱", "胡", "郭"];
const GIVEN: &[&str] =
    &["建国", "丽", "伟", "芳", "军", "敏", "强", "静", "磊", "娟", "涛", "燕", "勇", "霞", "斌", "红梅"];
const DISPUTES: &[&str] = &[
    "邻里纠纷",
    "婚姻家庭纠纷",
    "土地承包纠纷",
    "宅基地纠纷",
    "劳动争议",
    "损害赔偿纠纷",
    "合同纠纷",
    "山林水利纠纷",
    "赡养纠纷",
    "物业纠纷",
];
const QUESTIONS: &[&str] =
    &["婚姻家庭", "劳动报酬", "土地流转", "继承", "借贷债务", "交通事故", "工伤认定", "房屋买卖"];
const AID: &[&str] = &["农民工讨薪", "工伤赔偿", "赡养费", "交通事故赔偿", "离婚纠纷"];
const OPINIONS: &[&str] = &["镇政府合同审查", "信访事项法律意见", "招商引资协议审查", "集体资产处置意见"];
const REVIEWS: &[&str] = &["镇政府规范性文件审查", "重大行政决策合法性审查", "土地征收方案审查", "行政执法决定审核"];
const CAMPAIGNS: &[&str] = &["赶集日普法宣传", "送法进校园", "送法进村入户", "反诈宣传", "禁毒宣传", "扫黑除恶宣传"];
const LECTURES: &[&str] = &["民法典专题讲座", "村干部法治讲座", "未成年人保护法讲座", "农村土地法律讲座"];

/// A month's weight for disputes: more around the Spring Festival and harvest.
const SEASON: [f64; 12] = [1.4, 1.3, 1.0, 0.9, 0.9, 1.0, 1.0, 0.9, 1.0, 1.1, 1.0, 1.2];

fn choose_format(rng: &mut Rng) -> LedgerFormat {
    let x = rng.f();
    if x < 0.15 {
        LedgerFormat::Xlsx
    } else if x < 0.45 {
        LedgerFormat::CsvGbk
    } else {
        LedgerFormat::CsvUtf8
    }
}

/// Generates an office's books for `spec` (nothing is written).
pub fn books(unit: &Unit, spec: &SynthSpec) -> OfficeBooks {
    assert!((1..=12).contains(&spec.until_month), "until_month must be 1..=12");
    let seed = spec.seed.to_le_bytes();
    let year = spec.year.to_le_bytes();
    let mut office = Rng::new(&[unit.code.as_bytes(), &seed, b"office"]);
    let format = spec.format.unwrap_or_else(|| choose_format(&mut office));
    let population = unit.population.unwrap_or(20_000 + office.int(0, 30_000) as u64) as f64;
    let scale = (population / 30_000.0).clamp(0.3, 3.0);
    let staff: Vec<String> =
        (0..office.int(2, 4)).map(|_| format!("{}{}", office.pick(SURNAMES), office.pick(GIVEN))).collect();
    let villages = unit.villages.unwrap_or(office.int(6, 20)).max(1);
    // The whole year is generated from a year-specific stream, so writing
    // fewer months gives a prefix of the same books.
    let mut rng = Rng::new(&[unit.code.as_bytes(), &seed, &year, b"year"]);
    let activity = 0.7 + 0.6 * rng.f();
    let mut cases = Vec::new();
    let mut subjects = (8.0 * scale * activity).round().max(2.0) as i64;
    let mut subjects_by_month = [0i64; 12];
    for m in 1..=12u8 {
        let period = Period::new(spec.year, m).expect("valid year");
        let dim = period.days_in_month() as u32;
        let mut rows: Vec<CaseRow> = Vec::new();
        let mut add = |rng: &mut Rng,
                       category: &'static str,
                       matter: String,
                       outcome: &str,
                       people: u32,
                       mode: &'static str,
                       note: &str| {
            let day = Day::new(spec.year as i64, m as i64, rng.int(1, dim) as i64).expect("valid day");
            let handler = rng.pick(&staff).clone();
            rows.push(CaseRow {
                seq: 0,
                day,
                category,
                matter,
                outcome: outcome.to_string(),
                people,
                mode,
                handler,
                note: note.to_string(),
            });
        };
        let s = SEASON[m as usize - 1];
        for _ in 0..rng.poisson(3.0) {
            let what = *rng.pick(&["月度排查", "重点人员排查", "节前集中排查", "网格员走访排查"]);
            let n = rng.int(2, 5);
            add(&mut rng, "矛盾纠纷排查", what.into(), "已完成", n, "现场", "");
        }
        for _ in 0..rng.poisson(3.5 * scale * activity * s) {
            let matter = rng.pick(DISPUTES).to_string();
            let x = rng.f();
            let (outcome, note) = if x < 0.88 {
                ("调解成功", "达成调解协议")
            } else if x < 0.96 {
                ("调解不成功", "引导当事人诉讼")
            } else {
                ("已转办", "转县人民调解中心")
            };
            let mode = if outcome != "已转办" && rng.chance(0.12) { "视频" } else { "现场" };
            let n = rng.int(2, 4);
            add(&mut rng, "人民调解", matter, outcome, n, mode, note);
        }
        for _ in 0..rng.poisson(8.0 * scale) {
            let matter = format!("{}咨询", rng.pick(QUESTIONS));
            let n = if rng.chance(0.75) { 1 } else { rng.int(2, 3) };
            let mode = if rng.chance(0.3) { "电话" } else { "现场" };
            add(&mut rng, "法律咨询", matter, "已解答", n, mode, "");
        }
        for _ in 0..rng.poisson(0.7 * scale) {
            let matter = rng.pick(AID).to_string();
            add(&mut rng, "法律援助", matter, "已转县法律援助中心", 1, "现场", "符合法律援助条件");
        }
        for _ in 0..rng.poisson(0.6) {
            let matter = rng.pick(OPINIONS).to_string();
            add(&mut rng, "法律意见", matter, "已出具", 1, "书面", "");
        }
        for _ in 0..rng.poisson(1.5) {
            let matter = rng.pick(REVIEWS).to_string();
            add(&mut rng, "合法性审查", matter, "已审查", 1, "书面", "");
        }
        let campaigns = rng.poisson(1.6) + u32::from(m == 5 || m == 12);
        for i in 0..campaigns {
            let matter = if m == 12 && i == 0 {
                "国家宪法日宣传".to_string()
            } else if m == 5 && i == 0 {
                "民法典宣传月活动".to_string()
            } else {
                rng.pick(CAMPAIGNS).to_string()
            };
            let n = rng.int(30, 300);
            add(&mut rng, "法治宣传", matter, "已开展", n, "现场", "");
        }
        for _ in 0..rng.poisson(0.8) {
            let matter = rng.pick(LECTURES).to_string();
            let n = rng.int(20, 120);
            add(&mut rng, "法治讲座", matter, "已开展", n, "现场", "");
        }
        for _ in 0..rng.poisson(1.0) {
            let n = ((rng.int(15, 45) as f64) * scale.sqrt()).round() as u32;
            add(&mut rng, "法律明白人培训", "村(社区)法律明白人培训".into(), "已开展", n.max(5), "现场", "");
        }
        for _ in 0..rng.poisson(0.5) {
            let n = rng.int(2, 6);
            add(&mut rng, "业务培训", "司法所业务培训".into(), "已参加", n, "现场", "县司法局组织");
        }
        let received = rng.poisson(0.7 * scale);
        for _ in 0..received {
            add(&mut rng, "社区矫正", "入矫报到".into(), "已接收", 1, "现场", "建立矫正档案");
        }
        let released = rng.poisson(0.7 * scale).min(subjects.max(0) as u32);
        for _ in 0..released {
            add(&mut rng, "社区矫正", "解除矫正".into(), "已解除", 1, "现场", "矫正期满");
        }
        subjects += received as i64 - released as i64;
        subjects_by_month[m as usize - 1] = subjects;
        for _ in 0..rng.poisson(0.8 * scale) {
            let n = if rng.chance(0.8) { 1 } else { 2 };
            add(&mut rng, "安置帮教", "刑满释放人员帮扶".into(), "已落实", n, "现场", "");
        }
        if rng.chance(0.06) {
            add(&mut rng, "查找失联人员", "失联社区矫正对象查找".into(), "已查明", 1, "现场", "");
        }
        rows.sort_by(|a, b| (a.day, a.category).cmp(&(b.day, b.category)));
        cases.extend(rows);
    }
    // Stocks: set at the start of the year, with the odd change.
    let staff_authorized = office.int(2, 3) as f64;
    let mut staff_actual = if office.chance(0.9) { staff_authorized } else { staff_authorized - 1.0 };
    let mut contracted = office.int(1, 2) as f64;
    let assistants = office.int(0, 3) as f64;
    let mediators = office.int(1, 2) as f64;
    let area = if office.chance(0.9) {
        100.0 + office.int(0, 320) as f64 * 0.5
    } else {
        60.0 + office.int(0, 78) as f64 * 0.5
    };
    let studios = *office.pick(&[1.0, 1.0, 1.0, 0.0, 2.0]);
    let villages_with_adviser =
        if office.chance(0.85) { villages } else { villages.saturating_sub(office.int(1, 3)).max(1) } as f64;
    let star = *office.pick(&[3.0, 4.0, 4.0, 4.0, 5.0, 5.0]);
    // About one office in ten holds the Fengqiao-style designation; a few more
    // are designated during the year.
    let fengqiao_from = if office.chance(0.08) {
        1
    } else if office.chance(0.03) {
        office.int(4, 12) as u8
    } else {
        13
    };
    let hire_month = if rng.chance(0.3) { rng.int(4, 10) as u8 } else { 13 };
    let fill_month = if staff_actual < staff_authorized { rng.int(3, 11) as u8 } else { 13 };
    let invest_month = if rng.chance(0.5) { rng.int(3, 10) as u8 } else { 13 };
    let invest = rng.int(20, 300) as f64 * 1000.0 + rng.int(0, 99) as f64 * 0.01;
    let mut totals = BTreeMap::new();
    for m in 1..=spec.until_month {
        if m == hire_month {
            contracted += 1.0;
        }
        if m == fill_month {
            staff_actual = staff_authorized;
        }
        let values: Vec<(&'static str, f64)> = vec![
            ("correction_subjects", subjects_by_month[m as usize - 1] as f64),
            ("staff_authorized", staff_authorized),
            ("staff_actual", staff_actual),
            ("staff_contracted", contracted),
            ("judicial_assistants", assistants),
            ("mediators_fulltime", mediators),
            ("office_area_m2", area),
            ("mediation_committees", villages as f64 + 1.0),
            ("mediation_studios", studios),
            ("service_rooms", villages as f64),
            ("villages_total", villages as f64),
            ("villages_with_adviser", villages_with_adviser),
            ("star_rating", star),
            ("fengqiao_style", if m >= fengqiao_from { 1.0 } else { 0.0 }),
            ("investment_yuan", if m == invest_month { invest } else { 0.0 }),
        ];
        totals.insert(Period::new(spec.year, m).expect("valid"), values);
    }
    // Only the months asked for.
    let last = Day::new(
        spec.year as i64,
        spec.until_month as i64,
        spec.until_day.unwrap_or(31).min(Period::new(spec.year, spec.until_month).expect("valid").days_in_month())
            as i64,
    )
    .expect("valid day");
    cases.retain(|r| r.day <= last);
    for (i, r) in cases.iter_mut().enumerate() {
        r.seq = i + 1;
    }
    for &m in &spec.corrections {
        correct_month(&mut cases, spec.year, m, &mut Rng::new(&[unit.code.as_bytes(), &seed, &year, &[m], b"fix"]));
    }
    OfficeBooks { unit_code: unit.code.to_string(), format, cases, totals }
}

/// Corrects one row of month `m`: a mediation first logged as failed reached
/// agreement on a return visit; without one, a consultation is logged late.
fn correct_month(cases: &mut Vec<CaseRow>, year: u16, m: u8, rng: &mut Rng) {
    if let Some(r) =
        cases.iter_mut().find(|r| r.day.month == m && r.category == "人民调解" && r.outcome == "调解不成功")
    {
        r.outcome = "调解成功".into();
        r.note = "回访后达成协议(更正)".into();
        return;
    }
    let period = Period::new(year, m).expect("valid");
    let day = Day::new(year as i64, m as i64, rng.int(1, period.days_in_month() as u32) as i64).expect("valid");
    let handler = cases.first().map(|r| r.handler.clone()).unwrap_or_else(|| "王丽".into());
    cases.push(CaseRow {
        seq: cases.len() + 1,
        day,
        category: "法律咨询",
        matter: format!("{}咨询", rng.pick(QUESTIONS)),
        outcome: "已解答".into(),
        people: 1,
        mode: "现场",
        handler,
        note: "补录".into(),
    });
}

/// The files written for an office.
#[derive(Debug, Clone)]
pub struct Written {
    pub ledger: PathBuf,
    pub totals: PathBuf,
    pub config: PathBuf,
    pub format: LedgerFormat,
}

fn csv_bytes(rows: &[Vec<String>], format: LedgerFormat) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    for r in rows {
        w.write_record(r).expect("in-memory write");
    }
    let text = String::from_utf8(w.into_inner().expect("in-memory")).expect("utf-8");
    match format {
        LedgerFormat::CsvGbk => encoding_rs::GBK.encode(&text).0.into_owned(),
        _ => {
            let mut b = b"\xEF\xBB\xBF".to_vec();
            b.extend_from_slice(text.as_bytes());
            b
        }
    }
}

fn number_text(v: f64) -> String {
    sifa_agent::ledger::format_number(v)
}

/// Writes an office's books and its agent config into `dir`:
/// `台账_<unit>.<csv|xlsx>`, `月度汇总_<unit>.<csv|xlsx>` and `agent.toml`
/// (aggregator `aggregator`, outbox `outbox_dir`, relative to `dir` if relative,
/// and `tls` as its `[tls]` table).
pub fn write_office(
    dir: &Path,
    unit: &Unit,
    spec: &SynthSpec,
    aggregator: &str,
    outbox_dir: &Path,
    tls: &TlsConfig,
) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let b = books(unit, spec);
    let ext = b.format.extension();
    let ledger = dir.join(format!("台账_{}.{ext}", unit.code));
    let totals = dir.join(format!("月度汇总_{}.{ext}", unit.code));
    // Offices on Chinese Windows write months as 2024年3月; others 2024-03.
    let month_text = |p: &Period| {
        if b.format == LedgerFormat::CsvUtf8 { p.to_string() } else { format!("{}年{}月", p.year(), p.month()) }
    };
    let mut totals_header = vec!["月份".to_string()];
    totals_header.extend(TOTALS_COLUMNS.iter().map(|(_, zh)| zh.to_string()));
    totals_header.push("备注".into());
    match b.format {
        LedgerFormat::Xlsx => {
            let mut rows: Vec<Vec<XCell>> = vec![CASE_HEADERS.iter().map(|h| XCell::Text(h.to_string())).collect()];
            for r in &b.cases {
                rows.push(vec![
                    XCell::Number(r.seq as f64),
                    XCell::Date(r.day),
                    XCell::Text(r.category.into()),
                    XCell::Text(r.matter.clone()),
                    XCell::Text(r.outcome.clone()),
                    XCell::Number(r.people as f64),
                    XCell::Text(r.mode.into()),
                    XCell::Text(r.handler.clone()),
                    if r.note.is_empty() { XCell::Empty } else { XCell::Text(r.note.clone()) },
                ]);
            }
            xlsx_writer::write(&ledger, "台账", &rows)?;
            let mut rows: Vec<Vec<XCell>> = vec![totals_header.iter().map(|h| XCell::Text(h.clone())).collect()];
            for (p, values) in &b.totals {
                let mut row = vec![XCell::Text(month_text(p))];
                row.extend(values.iter().map(|(_, v)| XCell::Number(*v)));
                rows.push(row);
            }
            xlsx_writer::write(&totals, "月度汇总", &rows)?;
        }
        fmt => {
            let mut rows = vec![CASE_HEADERS.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
            for r in &b.cases {
                // GBK offices write dates the way Excel shows them on Chinese Windows.
                let date = if fmt == LedgerFormat::CsvGbk {
                    format!("{}/{}/{}", r.day.year, r.day.month, r.day.day)
                } else {
                    r.day.to_string()
                };
                rows.push(vec![
                    r.seq.to_string(),
                    date,
                    r.category.into(),
                    r.matter.clone(),
                    r.outcome.clone(),
                    r.people.to_string(),
                    r.mode.into(),
                    r.handler.clone(),
                    r.note.clone(),
                ]);
            }
            std::fs::write(&ledger, csv_bytes(&rows, fmt))?;
            let mut rows = vec![totals_header.clone()];
            for (p, values) in &b.totals {
                let mut row = vec![month_text(p)];
                row.extend(values.iter().map(|(_, v)| number_text(*v)));
                row.push(String::new());
                rows.push(row);
            }
            std::fs::write(&totals, csv_bytes(&rows, fmt))?;
        }
    }
    let config = dir.join("agent.toml");
    let file = config_file(unit, spec, aggregator, outbox_dir, &ledger, &totals, tls);
    let header = format!(
        "# sifa-agent config for {} ({}), written by sifa-sim (see config/agent.example.toml)\n",
        unit.name, unit.code
    );
    std::fs::write(&config, header + &file.to_toml())?;
    Ok(Written { ledger, totals, config, format: b.format })
}

/// The agent config of a generated office: its totals sheet and its case ledger read with [`mapping`],
/// paths under the config's folder written relative to it.
pub fn config_file(
    unit: &Unit,
    spec: &SynthSpec,
    aggregator: &str,
    outbox_dir: &Path,
    ledger: &Path,
    totals: &Path,
    tls: &TlsConfig,
) -> ConfigFile {
    let dir = ledger.parent();
    let relative = |p: &Path| dir.and_then(|d| p.strip_prefix(d).ok()).unwrap_or(p).to_path_buf();
    ConfigFile {
        outbox_dir: relative(outbox_dir),
        first_period: Some(format!("{}-01", spec.year)),
        last_period: Some(format!("{}-{:02}", spec.year, spec.until_month)),
        collect_interval_seconds: 60,
        retry_min_seconds: 1,
        retry_max_seconds: 60,
        connect_timeout_seconds: 5,
        totals: vec![TotalsSource::new(relative(totals))],
        ledger: vec![LedgerSource { rules: mapping(), ..LedgerSource::new(relative(ledger)) }],
        ..ConfigFile::new(&unit.code, aggregator, tls.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::{Registry, UnitKind};

    fn dunhuang_towns() -> Vec<Unit> {
        let reg = Registry::demo();
        reg.children("620982").filter(|u| u.kind == UnitKind::Office).cloned().collect()
    }

    #[test]
    fn same_inputs_same_books_and_months_are_a_prefix() {
        let u = &dunhuang_towns()[0];
        let a = books(u, &SynthSpec::year(2024, 7));
        let b = books(u, &SynthSpec::year(2024, 7));
        assert_eq!(a.cases, b.cases);
        let c = books(u, &SynthSpec::year(2024, 8));
        assert_ne!(a.cases, c.cases, "another seed gives other books");
        let upto = books(u, &SynthSpec { until_month: 5, ..SynthSpec::year(2024, 7) });
        assert!(upto.cases.iter().all(|r| r.day.month <= 5));
        assert_eq!(upto.cases[..], a.cases[..upto.cases.len()]);
        assert_eq!(upto.totals.len(), 5);
    }

    #[test]
    fn magnitudes_follow_the_domain() {
        // Dunhuang's nine offices resolve 400+ disputes a year between them.
        let towns = dunhuang_towns();
        assert_eq!(towns.len(), 9);
        let mut resolved = 0;
        for u in &towns {
            let b = books(u, &SynthSpec::year(2024, 1));
            let n = b.cases.iter().filter(|r| r.category == "人民调解" && r.outcome == "调解成功").count();
            assert!((15..=200).contains(&n), "{}: {n} resolved", u.code);
            resolved += n;
            let area = b.totals.values().next().unwrap().iter().find(|(k, _)| *k == "office_area_m2").unwrap().1;
            assert!(area >= 60.0);
            // The register of correction subjects never goes negative.
            assert!(b.totals.values().all(|v| v[0].1 >= 0.0));
        }
        assert!((400..=800).contains(&resolved), "Dunhuang resolved {resolved}");
    }

    #[test]
    fn the_written_config_is_one_the_agent_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let u = &dunhuang_towns()[2];
        let spec = SynthSpec { until_month: 4, format: Some(LedgerFormat::Xlsx), ..SynthSpec::year(2024, 9) };
        let w =
            write_office(dir.path(), u, &spec, "https://127.0.0.1:7401", Path::new("outbox"), &TlsConfig::default())
                .unwrap();
        let c = sifa_agent::config::Config::load(&w.config).unwrap();
        c.check_mapping(&sifa_proto::Catalog::builtin()).unwrap();
        assert_eq!((c.unit.as_str(), c.aggregator.as_str()), (u.code.as_str(), "https://127.0.0.1:7401"));
        assert_eq!((c.ledgers[0].path.clone(), c.totals[0].path.clone()), (w.ledger, w.totals));
        assert_eq!(c.outbox_dir, dir.path().join("outbox"));
        assert_eq!(c.last_period, Period::new(2024, 4));
        assert_eq!(c.ledgers[0].rules, mapping());
        let text = std::fs::read_to_string(&w.config).unwrap();
        assert!(!text.contains(&dir.path().display().to_string()), "paths are relative to the config:\n{text}");
    }

    #[test]
    fn about_one_office_in_ten_is_fengqiao_style() {
        let reg = Registry::demo();
        let offices: Vec<&Unit> = reg.units().iter().filter(|u| u.kind == UnitKind::Office).collect();
        let december = |u: &Unit| {
            let b = books(u, &SynthSpec::year(2024, 1));
            let values = b.totals.values().last().unwrap().clone();
            values.iter().find(|(k, _)| *k == "fengqiao_style").unwrap().1
        };
        let designated = offices.iter().filter(|u| december(u) == 1.0).count();
        let share = designated as f64 / offices.len() as f64;
        assert!((0.05..=0.2).contains(&share), "{designated} of {} offices designated", offices.len());
        assert!(offices.iter().all(|u| [0.0, 1.0].contains(&december(u))));
    }

    #[test]
    fn a_correction_changes_one_row_of_that_month() {
        let u = &dunhuang_towns()[1];
        let base = books(u, &SynthSpec { until_month: 6, ..SynthSpec::year(2024, 3) });
        let fixed = books(u, &SynthSpec { until_month: 6, corrections: vec![2], ..SynthSpec::year(2024, 3) });
        let changed: Vec<_> = fixed.cases.iter().filter(|r| !base.cases.contains(r)).collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(changed[0].day.month, 2);
    }
}
