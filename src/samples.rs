//! Dataset registrations for the real sample data in `../shared/data` (Adult, PUMS) and
//! a generated enterprise-electricity dataset with valid unified social credit codes.
//! The demo, the benchmarks and the tests use the same definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Domain, Hierarchy, MaskFormat,
    PrivacyModel,
};
use pdx_sandbox::catalog::{Level, NewDataset, OpenAttribute, ShareType};

/// Where the shared sample data lives, relative to the project root.
pub fn shared_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// The Adult columns in file order, with whether each is numeric.
const ADULT_COLUMNS: [(&str, bool); 9] = [
    ("sex", false),
    ("age", true),
    ("race", false),
    ("marital-status", false),
    ("education", false),
    ("native-country", false),
    ("workclass", false),
    ("occupation", false),
    ("salary-class", false),
];

/// Reads one `;`-separated hierarchy file (value;level1;...;*).
pub fn read_hierarchy(path: &Path) -> anyhow::Result<Hierarchy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect();
    Ok(Hierarchy { rows })
}

/// The Adult census extract as a conditionally open dataset: every column but
/// `salary-class` is a quasi-identifier generalised by its ARX hierarchy, and
/// `salary-class` is the sensitive attribute; k = 5 with at most 1% suppression.
pub fn adult_dataset(dir: &Path, open_attribute: OpenAttribute) -> anyhow::Result<NewDataset> {
    let mut hierarchies = BTreeMap::new();
    let mut columns = Vec::new();
    for (name, numeric) in ADULT_COLUMNS {
        let hierarchy = read_hierarchy(&dir.join(format!("adult_hierarchy_{name}.csv")))?;
        let values: Vec<String> = hierarchy
            .rows
            .iter()
            .filter_map(|r| r.first().cloned())
            .collect();
        let sensitive = name == "salary-class";
        let domain = if numeric {
            let nums: Vec<f64> = values.iter().filter_map(|v| v.parse().ok()).collect();
            Some(Domain::Range {
                min: nums.iter().copied().fold(f64::INFINITY, f64::min),
                max: nums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        } else {
            Some(Domain::Categories { values })
        };
        columns.push(ColumnSpec {
            name: name.to_string(),
            column_type: if numeric {
                ColumnType::Integer
            } else {
                ColumnType::String
            },
            role: if sensitive {
                ColumnRole::Sensitive
            } else {
                ColumnRole::QuasiIdentifier
            },
            rule: if sensitive {
                DeidRule::Keep
            } else {
                DeidRule::Hierarchy {
                    name: name.to_string(),
                }
            },
            domain,
            nullable: false,
        });
        if !sensitive {
            hierarchies.insert(name.to_string(), hierarchy);
        }
    }
    Ok(NewDataset {
        title: "Adult census extract".into(),
        description: "UCI Adult: demographics and an income class per person (30,162 records)"
            .into(),
        theme: "census".into(),
        source_department: "Statistics Bureau".into(),
        collecting_department: "Statistics Bureau".into(),
        approving_department: "Data Management Bureau".into(),
        providing_department: "Statistics Bureau".into(),
        data_form: "table".into(),
        update_frequency: "yearly".into(),
        level: Level::L3,
        share_type: ShareType::Conditional,
        share_conditions: "research and public-interest use under an open-use agreement".into(),
        legal_basis: "Statistics Law Art.9; GD21 Art.12".into(),
        open_attribute,
        research_only: false,
        schema: DatasetSchema {
            columns,
            hierarchies,
            privacy: PrivacyModel {
                k: 5,
                l: None,
                max_suppression: 0.01,
                metric: Default::default(),
            },
        },
        elements: vec!["census.person_income".into()],
    })
}

/// A unified social credit code with a valid check character (GB 32100-2015).
pub fn credit_code(seed: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    // "91" (enterprise), a region code, then 9 + 1 organisation characters.
    let mut body: Vec<u8> = b"91440300".to_vec();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while body.len() < 17 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        body.push(ALPHABET[((x >> 33) % 31) as usize]);
    }
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| ALPHABET.iter().position(|a| a == c).unwrap_or(0) as u32 * w)
        .sum();
    let check = (31 - sum % 31) % 31;
    body.push(ALPHABET[check as usize]);
    String::from_utf8_lossy(&body).into_owned()
}

/// The enterprise electricity dataset's schema: the credit code is pseudonymised
/// (FHE lookups use it as the key), the district and industry are quasi-identifiers.
pub fn electricity_dataset() -> NewDataset {
    let districts: Vec<String> = [
        "Futian", "Luohu", "Nanshan", "Bao'an", "Longgang", "Yantian",
    ]
    .map(String::from)
    .to_vec();
    let industries: Vec<String> = [
        "manufacturing",
        "retail",
        "logistics",
        "software",
        "catering",
    ]
    .map(String::from)
    .to_vec();
    let flat = |values: &[String]| Hierarchy {
        rows: values.iter().map(|v| vec![v.clone(), "*".into()]).collect(),
    };
    let mut hierarchies = BTreeMap::new();
    hierarchies.insert("district".to_string(), flat(&districts));
    hierarchies.insert("industry".to_string(), flat(&industries));
    let col = |name: &str, t, role, rule, domain| ColumnSpec {
        name: name.into(),
        column_type: t,
        role,
        rule,
        domain,
        nullable: false,
    };
    NewDataset {
        title: "Enterprise electricity consumption".into(),
        description: "Monthly electricity use of enterprises, last 12 months, in kWh".into(),
        theme: "utilities".into(),
        source_department: "Power Supply Bureau".into(),
        collecting_department: "Power Supply Bureau".into(),
        approving_department: "Data Management Bureau".into(),
        providing_department: "Power Supply Bureau".into(),
        data_form: "table".into(),
        update_frequency: "monthly".into(),
        level: Level::L2,
        share_type: ShareType::Conditional,
        share_conditions: "with the enterprise's authorisation".into(),
        legal_basis: "Electricity Law Art.5; GD21 Art.12".into(),
        open_attribute: OpenAttribute::Conditional,
        research_only: false,
        schema: DatasetSchema {
            columns: vec![
                col(
                    "credit_code",
                    ColumnType::String,
                    ColumnRole::DirectIdentifier,
                    DeidRule::Pseudonymise,
                    Some(Domain::Identifier(MaskFormat::CreditCode)),
                ),
                col(
                    "district",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Hierarchy {
                        name: "district".into(),
                    },
                    Some(Domain::Categories { values: districts }),
                ),
                col(
                    "industry",
                    ColumnType::String,
                    ColumnRole::QuasiIdentifier,
                    DeidRule::Hierarchy {
                        name: "industry".into(),
                    },
                    Some(Domain::Categories { values: industries }),
                ),
                col(
                    "kwh_12m",
                    ColumnType::Integer,
                    ColumnRole::Sensitive,
                    DeidRule::Keep,
                    Some(Domain::Range {
                        min: 0.0,
                        max: 10_000_000_000.0,
                    }),
                ),
            ],
            hierarchies,
            privacy: PrivacyModel {
                k: 3,
                l: None,
                max_suppression: 0.05,
                metric: Default::default(),
            },
        },
        elements: vec!["enterprise.electricity_consumption".into()],
    }
}

/// `rows` generated enterprises as CSV (deterministic for a seed).
pub fn electricity_csv(rows: usize, seed: u64) -> String {
    let districts = [
        "Futian", "Luohu", "Nanshan", "Bao'an", "Longgang", "Yantian",
    ];
    let industries = [
        "manufacturing",
        "retail",
        "logistics",
        "software",
        "catering",
    ];
    let mut out = String::from("credit_code,district,industry,kwh_12m\n");
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let d = districts[((x >> 20) % districts.len() as u64) as usize];
        let ind = industries[((x >> 40) % industries.len() as u64) as usize];
        let kwh = 10_000 + (x >> 8) % 2_000_000;
        out.push_str(&format!(
            "{},{d},{ind},{kwh}\n",
            credit_code(seed.wrapping_add(i as u64))
        ));
    }
    out
}
