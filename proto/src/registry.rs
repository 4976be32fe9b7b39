//! The unit registry: who reports, and to whom.
//!
//! A tree of province → city → county nodes (under a nation when the registry
//! has one: the Ministry of Justice above the provinces) with the reporting units hanging
//! under them: judicial offices (司法所) and the other units whose statistics
//! count in provincial totals (county bureaus, mediation centres, industry
//! mediation committees). Read from a CSV a statistician edits in Excel, in
//! UTF-8 or GBK; the format is in docs/REGISTRY.md.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::text;
use crate::unit_code::UnitCode;

/// The demo registry sifa ships (docs/REGISTRY.md says how it is made).
pub const DEMO_REGISTRY_CSV: &str = include_str!("../registry/demo.csv");
/// The same provinces under a nation (`sifa demo --national`; made by the same script).
pub const DEMO_NATIONAL_REGISTRY_CSV: &str = include_str!("../registry/national.csv");

/// What a unit of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// 全国: the national tier (中华人民共和国司法部), above the provinces (a node)
    Nation,
    /// 省 (a node, not a reporting unit)
    Province,
    /// 市 (a node)
    City,
    /// 县/区 (a node)
    County,
    /// 司法所: a township or street judicial office
    Office,
    /// 县级司法局 reporting its own work
    Bureau,
    /// a county-level mediation centre (人民调解中心)
    MediationCentre,
    /// an industry or professional mediation committee (行业性专业性人民调解委员会)
    IndustryCommittee,
}

impl UnitKind {
    pub const ALL: [UnitKind; 8] = [
        UnitKind::Nation,
        UnitKind::Province,
        UnitKind::City,
        UnitKind::County,
        UnitKind::Office,
        UnitKind::Bureau,
        UnitKind::MediationCentre,
        UnitKind::IndustryCommittee,
    ];

    /// The name used in files and in the store's `unit_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Nation => "nation",
            UnitKind::Province => "province",
            UnitKind::City => "city",
            UnitKind::County => "county",
            UnitKind::Office => "office",
            UnitKind::Bureau => "bureau",
            UnitKind::MediationCentre => "mediation_centre",
            UnitKind::IndustryCommittee => "industry_committee",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            UnitKind::Nation => "全国",
            UnitKind::Province => "省",
            UnitKind::City => "市",
            UnitKind::County => "县",
            UnitKind::Office => "司法所",
            UnitKind::Bureau => "司法局",
            UnitKind::MediationCentre => "调解中心",
            UnitKind::IndustryCommittee => "行业调委会",
        }
    }

    /// Reporting units send reports; nation, province, city and county are nodes of the tree.
    pub fn is_reporting(self) -> bool {
        !matches!(self, UnitKind::Nation | UnitKind::Province | UnitKind::City | UnitKind::County)
    }

    fn parse(s: &str) -> Option<UnitKind> {
        let s = s.trim();
        UnitKind::ALL.into_iter().find(|k| k.as_str() == s || k.name_zh() == s)
    }

    /// The kinds a unit of this kind may hang under.
    fn allowed_parents(self) -> &'static [UnitKind] {
        match self {
            UnitKind::Nation => &[],
            // A province stands at the top of a registry without a nation.
            UnitKind::Province => &[UnitKind::Nation],
            UnitKind::City => &[UnitKind::Province],
            // Counties under a municipality (直辖市) hang directly under the province.
            UnitKind::County => &[UnitKind::City, UnitKind::Province],
            UnitKind::Office => &[UnitKind::County],
            _ => &[UnitKind::County, UnitKind::City, UnitKind::Province],
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub code: UnitCode,
    pub name: String,
    pub kind: UnitKind,
    pub parent: Option<UnitCode>,
    pub population: Option<u64>,
    pub villages: Option<u32>,
}

/// The nation, province, city and county a unit lies under (its own code where the unit
/// is that node itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage<'a> {
    pub nation: Option<&'a Unit>,
    pub province: Option<&'a Unit>,
    pub city: Option<&'a Unit>,
    pub county: Option<&'a Unit>,
}

/// Why a registry file was not accepted. Line numbers count the header as line 1.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read registry {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("registry: {0}")]
    Decode(#[from] text::DecodeError),
    #[error("registry line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("registry: {0}")]
    Invalid(String),
}

const COLUMNS: [(&str, &[&str]); 6] = [
    ("code", &["代码", "编码", "区划代码"]),
    ("name", &["名称", "单位名称"]),
    ("kind", &["类型", "单位类型"]),
    ("parent", &["上级", "上级代码"]),
    ("population", &["人口"]),
    ("villages", &["村(社区)数", "村数"]),
];

/// The tree of units.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    units: Vec<Unit>,
    by_code: HashMap<UnitCode, usize>,
    children: HashMap<UnitCode, Vec<usize>>,
}

/// A registry holds at most one nation; with one, it is the only top (every
/// province hangs under it), and its code begins with no province's code, so
/// it never reads as a county of one of them (a unit's kind comes from the
/// registry, never from its digits: `unit_code.rs`).
fn check_nation(units: &[Unit]) -> Result<(), RegistryError> {
    let mut nations = units.iter().filter(|u| u.kind == UnitKind::Nation);
    let Some(nation) = nations.next() else { return Ok(()) };
    if let Some(second) = nations.next() {
        return Err(RegistryError::Invalid(format!(
            "two nations, {} ({}) and {} ({}): a registry has one nation at the top; keep one",
            nation.code, nation.name, second.code, second.name
        )));
    }
    for p in units.iter().filter(|u| u.kind == UnitKind::Province) {
        if p.parent.is_none() {
            return Err(RegistryError::Invalid(format!(
                "province {} ({}) has no parent, but the registry's top is the nation {} ({}): name {} as its parent",
                p.code, p.name, nation.code, nation.name, nation.code
            )));
        }
        if nation.code.starts_with(p.code.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "the nation's code {} begins with province {}'s code {}, so it reads as one of that province's \
                 divisions: give the nation a code outside every province (100000 for 中华人民共和国司法部)",
                nation.code, p.name, p.code
            )));
        }
    }
    Ok(())
}

impl Registry {
    /// The demo registry sifa ships.
    pub fn demo() -> Registry {
        Registry::from_csv_bytes(DEMO_REGISTRY_CSV.as_bytes()).expect("the shipped demo registry is valid (tested)")
    }

    /// The demo's provinces under the nation 100000 (中华人民共和国司法部).
    pub fn demo_national() -> Registry {
        Registry::from_csv_bytes(DEMO_NATIONAL_REGISTRY_CSV.as_bytes())
            .expect("the shipped national demo registry is valid (tested)")
    }

    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let bytes =
            std::fs::read(path).map_err(|source| RegistryError::Read { path: path.display().to_string(), source })?;
        Registry::from_csv_bytes(&bytes)
    }

    /// Parses a registry CSV (UTF-8 or GBK; English or Chinese headers).
    pub fn from_csv_bytes(bytes: &[u8]) -> Result<Registry, RegistryError> {
        let (text, _) = text::decode(bytes)?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| RegistryError::Line { line: 1, message: e.to_string() })?.clone();
        let mut index = [None; 6];
        for (i, h) in headers.iter().enumerate() {
            let Some(col) = COLUMNS.iter().position(|(en, zh)| *en == h || zh.contains(&h)) else {
                return Err(RegistryError::Line {
                    line: 1,
                    message: format!("unknown column {h:?}; the columns are code,name,kind,parent,population,villages"),
                });
            };
            index[col] = Some(i);
        }
        for (col, (en, _)) in COLUMNS.iter().enumerate().take(4) {
            if index[col].is_none() {
                return Err(RegistryError::Line { line: 1, message: format!("missing column {en:?}") });
            }
        }
        let mut units = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let line = n + 2;
            let record = record.map_err(|e| RegistryError::Line { line, message: e.to_string() })?;
            let field = |col: usize| index[col].and_then(|i| record.get(i)).unwrap_or("").to_string();
            let lerr = |message: String| RegistryError::Line { line, message };
            if record.iter().all(|f| f.is_empty()) {
                continue;
            }
            let code = UnitCode::parse(&field(0)).map_err(|e| lerr(e.to_string()))?;
            let name = field(1);
            if name.is_empty() {
                return Err(lerr(format!("unit {code} has no name")));
            }
            let kind_text = field(2);
            let kind = UnitKind::parse(&kind_text).ok_or_else(|| {
                let kinds: Vec<_> = UnitKind::ALL.iter().map(|k| k.as_str()).collect();
                lerr(format!("unit {code}: kind {kind_text:?} is not one of {}", kinds.join(", ")))
            })?;
            let parent = Some(field(3))
                .filter(|p| !p.is_empty())
                .map(|p| UnitCode::parse(&p))
                .transpose()
                .map_err(|e| lerr(format!("unit {code}: parent: {e}")))?;
            let number = |col: usize, what: &str| -> Result<Option<u64>, RegistryError> {
                let v = field(col);
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse::<u64>().map(Some).map_err(|_| lerr(format!("unit {code}: {what} {v:?} is not a whole number")))
            };
            let population = number(4, "population")?;
            let villages = number(5, "villages")?.map(|v| v as u32);
            units.push(Unit { code, name, kind, parent, population, villages });
        }
        Registry::from_units(units)
    }

    /// Builds and checks a registry: codes are unique, every parent exists and
    /// is of a kind the child may hang under, there is no cycle, and with a
    /// nation there is one top (see [`check_nation`]).
    pub fn from_units(units: Vec<Unit>) -> Result<Registry, RegistryError> {
        let mut by_code = HashMap::with_capacity(units.len());
        for (i, u) in units.iter().enumerate() {
            if by_code.insert(u.code.clone(), i).is_some() {
                return Err(RegistryError::Invalid(format!("unit code {} appears twice", u.code)));
            }
        }
        check_nation(&units)?;
        let mut children: HashMap<UnitCode, Vec<usize>> = HashMap::new();
        for (i, u) in units.iter().enumerate() {
            match &u.parent {
                None if matches!(u.kind, UnitKind::Nation | UnitKind::Province) => {}
                None => {
                    return Err(RegistryError::Invalid(format!(
                        "{} {} ({}) has no parent; only a nation or a province may stand at the top",
                        u.kind, u.code, u.name
                    )));
                }
                Some(p) => {
                    let Some(&pi) = by_code.get(p) else {
                        return Err(RegistryError::Invalid(format!(
                            "{} {} ({}) names parent {p}, which is not in the registry",
                            u.kind, u.code, u.name
                        )));
                    };
                    let pk = units[pi].kind;
                    if !u.kind.allowed_parents().contains(&pk) {
                        return Err(RegistryError::Invalid(format!(
                            "{} {} ({}) cannot hang under {pk} {p}",
                            u.kind, u.code, u.name
                        )));
                    }
                    children.entry(p.clone()).or_default().push(i);
                }
            }
        }
        // Kinds only allow parents strictly higher in the tree, so there is no cycle.
        Ok(Registry { units, by_code, children })
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn get(&self, code: &str) -> Option<&Unit> {
        self.by_code.get(code).map(|&i| &self.units[i])
    }

    pub fn parent(&self, unit: &Unit) -> Option<&Unit> {
        unit.parent.as_deref().and_then(|p| self.get(p))
    }

    /// The unit's direct children, in file order.
    pub fn children(&self, code: &str) -> impl Iterator<Item = &Unit> {
        self.children.get(code).into_iter().flatten().map(|&i| &self.units[i])
    }

    /// The unit itself, then its parent, up to the top (the province, or the nation above it).
    pub fn ancestry<'a>(&'a self, code: &str) -> impl Iterator<Item = &'a Unit> + 'a {
        let mut next = self.get(code);
        std::iter::from_fn(move || {
            let cur = next?;
            next = self.parent(cur);
            Some(cur)
        })
    }

    /// Whether `code` is `root` or lies below it.
    pub fn is_within(&self, code: &str, root: &str) -> bool {
        self.ancestry(code).any(|u| u.code == root)
    }

    /// The nation, province, city and county above (or at) a unit.
    pub fn lineage(&self, code: &str) -> Lineage<'_> {
        let mut l = Lineage::default();
        for u in self.ancestry(code) {
            match u.kind {
                UnitKind::Nation => l.nation = Some(u),
                UnitKind::Province => l.province = Some(u),
                UnitKind::City => l.city = Some(u),
                UnitKind::County => l.county = Some(u),
                _ => {}
            }
        }
        l
    }

    /// `root` and everything below it, in file order.
    pub fn subtree(&self, root: &str) -> Vec<&Unit> {
        self.units.iter().filter(|u| self.is_within(&u.code, root)).collect()
    }

    /// The reporting units at or below `root`, in file order.
    pub fn reporting_units(&self, root: &str) -> Vec<&Unit> {
        self.subtree(root).into_iter().filter(|u| u.kind.is_reporting()).collect()
    }

    /// `root`'s subtree as a registry of its own, with `root`'s ancestors kept
    /// (so lineage still resolves), for serving to a lower tier.
    pub fn restricted_to(&self, root: &str) -> Registry {
        let mut keep: Vec<Unit> = self.ancestry(root).skip(1).cloned().collect();
        keep.reverse();
        keep.extend(self.subtree(root).into_iter().cloned());
        Registry::from_units(keep).expect("a subtree of a valid registry is valid")
    }

    /// The registry as UTF-8 CSV in the format it is read from.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(COLUMNS.iter().map(|(en, _)| *en)).expect("in memory");
        for u in &self.units {
            w.write_record([
                u.code.as_str(),
                u.name.as_str(),
                u.kind.as_str(),
                u.parent.as_deref().unwrap_or(""),
                &u.population.map(|p| p.to_string()).unwrap_or_default(),
                &u.villages.map(|v| v.to_string()).unwrap_or_default(),
            ])
            .expect("in memory");
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "code,name,kind,parent,population,villages
62,甘肃省,province,,,
6209,酒泉市,city,62,,
620982,敦煌市,county,6209,,
620982100,沙州镇司法所,office,620982,60000,12
620982900,敦煌市人民调解中心,mediation_centre,620982,,
620900901,酒泉市医疗纠纷人民调解委员会,industry_committee,6209,,
";

    #[test]
    fn reads_and_navigates() {
        let r = Registry::from_csv_bytes(SMALL.as_bytes()).unwrap();
        assert_eq!(r.len(), 6);
        let o = r.get("620982100").unwrap();
        assert_eq!((o.kind, o.population, o.villages), (UnitKind::Office, Some(60000), Some(12)));
        let l = r.lineage("620982100");
        assert_eq!(l.province.unwrap().code, "62");
        assert_eq!(l.city.unwrap().code, "6209");
        assert_eq!(l.county.unwrap().code, "620982");
        assert!(r.is_within("620982100", "620982"));
        assert!(r.is_within("620982100", "62"));
        assert!(!r.is_within("620900901", "620982"));
        let rep: Vec<_> = r.reporting_units("62").iter().map(|u| u.code.as_str()).collect();
        assert_eq!(rep, ["620982100", "620982900", "620900901"]);
        let sub = r.restricted_to("620982");
        assert_eq!(sub.len(), 5);
        assert_eq!(sub.lineage("620982100").city.unwrap().name, "酒泉市");
        assert!(sub.get("620900901").is_none());
        // Round trip through CSV.
        let again = Registry::from_csv_bytes(r.to_csv().as_bytes()).unwrap();
        assert_eq!(again.units(), r.units());
    }

    #[test]
    fn reads_gbk_with_chinese_headers_and_kinds() {
        let text = "代码,名称,类型,上级代码\n62,甘肃省,省,\n6209,酒泉市,市,62\n620982,敦煌市,县,6209\n620982101,七里镇司法所,司法所,620982\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let r = Registry::from_csv_bytes(&gbk).unwrap();
        assert_eq!(r.get("620982101").unwrap().name, "七里镇司法所");
        assert_eq!(r.get("620982101").unwrap().kind, UnitKind::Office);
    }

    #[test]
    fn bad_files_name_the_line_and_the_problem() {
        let cases = [
            ("code,name,kind\n", "missing column \"parent\""),
            ("code,name,kind,parent,colour\n", "unknown column \"colour\""),
            (
                "code,name,kind,parent\n62,甘肃省,province,\n62x,乙,city,62\n",
                "line 3: unit code \"62x\" is not a division code",
            ),
            ("code,name,kind,parent\n62,,province,\n", "line 2: unit 62 has no name"),
            ("code,name,kind,parent\n62,甘肃省,state,\n", "line 2: unit 62: kind \"state\" is not one of"),
            (
                "code,name,kind,parent,population\n62,甘肃省,province,,many\n",
                "population \"many\" is not a whole number",
            ),
            ("code,name,kind,parent\n62,甘肃省,province,\n62,甘肃省,province,\n", "appears twice"),
            ("code,name,kind,parent\n6209,酒泉市,city,62\n", "names parent 62, which is not in the registry"),
            ("code,name,kind,parent\n6209,酒泉市,city,\n", "has no parent"),
            (
                "code,name,kind,parent\n62,甘肃省,province,\n620982100,沙州镇司法所,office,62\n",
                "cannot hang under province 62",
            ),
        ];
        for (csv, want) in cases {
            let e = Registry::from_csv_bytes(csv.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
    }

    #[test]
    fn a_nation_stands_above_provinces_and_is_told_by_its_kind() {
        let csv = "code,name,kind,parent
100000,中华人民共和国司法部,nation,
62,甘肃省,province,100000
6209,酒泉市,city,62
620982,敦煌市,county,6209
620982100,沙州镇司法所,office,620982
21,辽宁省,province,100000
2111,盘锦市,city,21
";
        let r = Registry::from_csv_bytes(csv.as_bytes()).unwrap();
        // Six digits like a county's, yet a nation: the registry says so, not the length.
        assert_eq!(r.get("100000").unwrap().kind, UnitKind::Nation);
        assert_eq!(r.get("620982").unwrap().kind, UnitKind::County);
        let l = r.lineage("620982100");
        assert_eq!((l.nation.unwrap().code.as_str(), l.province.unwrap().code.as_str()), ("100000", "62"));
        assert!(r.is_within("2111", "100000") && r.is_within("620982100", "100000"));
        assert_eq!(r.reporting_units("100000").len(), 1);
        // A province's subtree keeps the nation above it, so lineage still resolves.
        let gansu = r.restricted_to("62");
        assert_eq!(gansu.lineage("620982100").nation.unwrap().name, "中华人民共和国司法部");
        assert!(gansu.get("21").is_none());
        assert_eq!(UnitKind::parse("全国"), Some(UnitKind::Nation));
        assert!(!UnitKind::Nation.is_reporting());
        let cases = [
            (
                "100000,中华人民共和国司法部,nation,\n62,甘肃省,province,\n",
                "province 62 (甘肃省) has no parent, but the registry's top is the nation 100000",
            ),
            ("100000,甲,nation,\n100001,乙,nation,\n", "two nations, 100000 (甲) and 100001 (乙)"),
            (
                "620000,甲,nation,\n62,甘肃省,province,620000\n",
                "the nation's code 620000 begins with province 甘肃省's code 62",
            ),
            ("100000,甲,nation,62\n62,甘肃省,province,100000\n", "nation 100000 (甲) cannot hang under province 62"),
            ("100000,甲,nation,\n6209,酒泉市,city,100000\n", "city 6209 (酒泉市) cannot hang under nation 100000"),
        ];
        for (rows, want) in cases {
            let e =
                Registry::from_csv_bytes(format!("code,name,kind,parent\n{rows}").as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
    }

    #[test]
    fn national_demo_registry_is_the_demo_under_a_nation() {
        let (demo, national) = (Registry::demo(), Registry::demo_national());
        assert_eq!(national.len(), demo.len() + 1);
        assert_eq!(national.get("100000").unwrap().name, "中华人民共和国司法部");
        let provinces: Vec<_> = national.children("100000").map(|u| (u.code.as_str(), u.kind)).collect();
        assert_eq!(provinces, [("62", UnitKind::Province), ("21", UnitKind::Province)]);
        for u in demo.units() {
            let n = national.get(&u.code).unwrap();
            let parent = if u.kind == UnitKind::Province { Some("100000") } else { u.parent.as_deref() };
            assert_eq!((n.name.as_str(), n.kind, n.parent.as_deref()), (u.name.as_str(), u.kind, parent));
        }
    }

    #[test]
    fn demo_registry_is_a_realistic_province() {
        let r = Registry::demo();
        // Dunhuang's nine offices, Panjin's forty-eight.
        assert_eq!(r.get("620982").unwrap().name, "敦煌市");
        let dunhuang: Vec<_> = r.children("620982").filter(|u| u.kind == UnitKind::Office).collect();
        assert_eq!(dunhuang.len(), 9);
        assert_eq!(r.get("2111").unwrap().name, "盘锦市");
        let panjin = r.reporting_units("2111").into_iter().filter(|u| u.kind == UnitKind::Office).count();
        assert_eq!(panjin, 48);
        let non_office = r.units().iter().filter(|u| u.kind.is_reporting() && u.kind != UnitKind::Office).count();
        assert!(non_office >= 5, "{non_office} non-office units");
        for u in r.units().iter().filter(|u| u.kind.is_reporting()) {
            assert!(r.lineage(&u.code).province.is_some(), "{} has a province", u.code);
        }
    }
}
