//! Block genes: the `K_C_G_O` strings of ESR_EA (`S_4_16_24`, `G_8_16_24`, …).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The three efficient residual dense block kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlockKind {
    /// Shrink RDB: dense 3x3 convs whose growing concatenation is shrunk by 1x1 convs.
    S,
    /// Group RDB: channel shuffle and grouped 3x3 convs.
    G,
    /// Contextual RDB: works at half resolution with three-times-reused 3x3 convs.
    C,
}

impl BlockKind {
    /// All kinds in the reference's order.
    pub const ALL: [BlockKind; 3] = [BlockKind::S, BlockKind::G, BlockKind::C];

    /// The one-letter name used in gene strings.
    pub fn letter(self) -> char {
        match self {
            BlockKind::S => 'S',
            BlockKind::G => 'G',
            BlockKind::C => 'C',
        }
    }

    /// A human name for tables.
    pub fn long_name(self) -> &'static str {
        match self {
            BlockKind::S => "shrink",
            BlockKind::G => "group",
            BlockKind::C => "contextual",
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl FromStr for BlockKind {
    type Err = GeneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "S" | "s" => Ok(BlockKind::S),
            "G" | "g" => Ok(BlockKind::G),
            "C" | "c" => Ok(BlockKind::C),
            other => Err(GeneError::new(
                other,
                format!("unknown block kind '{other}' (allowed: S, G, C)"),
            )),
        }
    }
}

/// One block of the network: kind, number of 3x3 convs, growth rate and output channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockGene {
    /// Block kind.
    pub kind: BlockKind,
    /// Number of 3x3 conv layers inside the block.
    pub convs: usize,
    /// Channels produced by each inner conv.
    pub growth: usize,
    /// Output channels of the block (always `>= growth`).
    pub out: usize,
}

/// A malformed gene string, with the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gene '{gene}': {reason}")]
pub struct GeneError {
    /// The text that failed to parse.
    pub gene: String,
    /// What is wrong with it and what is allowed.
    pub reason: String,
}

impl GeneError {
    /// Creates an error for `gene` with an explanation.
    pub fn new(gene: impl Into<String>, reason: impl Into<String>) -> Self {
        GeneError {
            gene: gene.into(),
            reason: reason.into(),
        }
    }
}

/// Most 3x3 convs a block may have: far beyond any useful network, low
/// enough that every size and cost computed from a gene fits in 64 bits.
pub const MAX_CONVS: usize = 64;

/// Most channels a block's growth rate, its output or G0 may have (same reason).
pub const MAX_CHANNELS: usize = 4096;

impl BlockGene {
    /// Builds a gene, checking only the rules that hold in every search space.
    pub fn new(
        kind: BlockKind,
        convs: usize,
        growth: usize,
        out: usize,
    ) -> Result<Self, GeneError> {
        let gene = BlockGene {
            kind,
            convs,
            growth,
            out,
        };
        gene.check_shape().map(|_| gene)
    }

    fn check_shape(&self) -> Result<(), GeneError> {
        let fail = |reason: String| Err(GeneError::new(self.to_string(), reason));
        if self.convs > MAX_CONVS {
            return fail(format!(
                "the conv count {} is absurd (allowed: 1 to {MAX_CONVS})",
                self.convs
            ));
        }
        if self.growth > MAX_CHANNELS || self.out > MAX_CHANNELS {
            return fail(format!(
                "{} channels are absurd (allowed: 1 to {MAX_CHANNELS} for the growth rate and the output)",
                self.growth.max(self.out)
            ));
        }
        if self.convs == 0 {
            return fail("the conv count must be at least 1".into());
        }
        if self.growth == 0 {
            return fail("the growth rate must be at least 1".into());
        }
        if self.out < self.growth {
            return fail(format!(
                "output channels O={} are smaller than the growth rate G={} (O must be >= G)",
                self.out, self.growth
            ));
        }
        if self.kind == BlockKind::C && ((self.convs + 1) * self.growth) % 4 != 0 {
            return fail(format!(
                "a C block pixel-shuffles (C+1)*G = {} channels by 2, which must be a multiple of 4",
                (self.convs + 1) * self.growth
            ));
        }
        Ok(())
    }
}

impl fmt::Display for BlockGene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}",
            self.kind, self.convs, self.growth, self.out
        )
    }
}

impl FromStr for BlockGene {
    type Err = GeneError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim().trim_matches(|c| c == '\'' || c == '"');
        let parts: Vec<&str> = s.split('_').collect();
        if parts.len() != 4 {
            return Err(GeneError::new(
                s,
                format!(
                    "expected 4 fields KIND_CONVS_GROWTH_OUT like S_4_16_24, found {}",
                    parts.len()
                ),
            ));
        }
        let kind: BlockKind = parts[0]
            .parse()
            .map_err(|e: GeneError| GeneError::new(s, e.reason))?;
        let number = |field: &str, name: &str| -> Result<usize, GeneError> {
            field
                .parse::<usize>()
                .map_err(|_| GeneError::new(s, format!("{name} '{field}' is not a whole number")))
        };
        let convs = number(parts[1], "conv count")?;
        let growth = number(parts[2], "growth rate")?;
        let out = number(parts[3], "output channels")?;
        BlockGene::new(kind, convs, growth, out)
    }
}

impl Serialize for GeneList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|g| g.to_string()))
    }
}

impl<'de> Deserialize<'de> for GeneList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let strings = Vec::<String>::deserialize(deserializer)?;
        strings
            .iter()
            .map(|s| s.parse::<BlockGene>())
            .collect::<Result<Vec<_>, _>>()
            .map(GeneList)
            .map_err(serde::de::Error::custom)
    }
}

/// An ordered list of block genes: the body of one network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct GeneList(pub Vec<BlockGene>);

impl GeneList {
    /// Parses genes given as separate words, one Python-style list string
    /// (`"['G_8_16_24', 'C_8_16_16']"`, as the reference prints them), or a mix.
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<GeneList, GeneError> {
        let mut genes = Vec::new();
        for arg in args {
            let cleaned = arg.as_ref().replace(['[', ']'], " ");
            for word in cleaned.split(|c: char| c == ',' || c.is_whitespace()) {
                let word = word.trim().trim_matches(|c| c == '\'' || c == '"');
                if !word.is_empty() {
                    genes.push(word.parse()?);
                }
            }
        }
        if genes.is_empty() {
            return Err(GeneError::new(
                "",
                "no block genes given (example: G_8_16_24 C_8_16_16)",
            ));
        }
        Ok(GeneList(genes))
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the list holds no block.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The genes in order.
    pub fn iter(&self) -> std::slice::Iter<'_, BlockGene> {
        self.0.iter()
    }

    /// The reference's list form: `['G_8_16_24', 'C_8_16_16']`.
    pub fn to_python_list(&self) -> String {
        let items: Vec<String> = self.0.iter().map(|g| format!("'{g}'")).collect();
        format!("[{}]", items.join(", "))
    }
}

impl fmt::Display for GeneList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|g| g.to_string()).collect();
        write!(f, "{}", items.join(" "))
    }
}

impl From<Vec<BlockGene>> for GeneList {
    fn from(v: Vec<BlockGene>) -> Self {
        GeneList(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let g: BlockGene = "S_4_16_24".parse().unwrap();
        assert_eq!(
            g,
            BlockGene {
                kind: BlockKind::S,
                convs: 4,
                growth: 16,
                out: 24
            }
        );
        assert_eq!(g.to_string(), "S_4_16_24");
    }

    #[test]
    fn rejects_malformed() {
        let err = |s: &str| s.parse::<BlockGene>().unwrap_err().to_string();
        assert!(err("X_4_16_24").contains("unknown block kind 'X'"));
        assert!(err("S_4_16").contains("expected 4 fields"));
        assert!(err("S_4_16_24_1").contains("found 5"));
        assert!(err("S_a_16_24").contains("conv count 'a' is not a whole number"));
        assert!(err("S_4_32_16").contains("O must be >= G"));
        assert!(err("S_0_16_16").contains("at least 1"));
        assert!(err("C_4_2_2").contains("multiple of 4"));
    }

    #[test]
    fn parses_python_list_and_words() {
        let list = GeneList::parse_args(&["['G_8_16_24', 'C_8_16_16']"]).unwrap();
        assert_eq!(list.to_string(), "G_8_16_24 C_8_16_16");
        assert_eq!(list.to_python_list(), "['G_8_16_24', 'C_8_16_16']");
        let words = GeneList::parse_args(&["G_8_16_24", "C_8_16_16"]).unwrap();
        assert_eq!(list, words);
        assert!(GeneList::parse_args::<&str>(&[]).is_err());
        assert!(GeneList::parse_args(&["[]"]).is_err());
    }

    #[test]
    fn gene_list_serde_uses_strings() {
        let list = GeneList::parse_args(&["S_4_16_24 G_6_8_8"]).unwrap();
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["S_4_16_24","G_6_8_8"]"#);
        let back: GeneList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        assert!(serde_json::from_str::<GeneList>(r#"["S_4_16"]"#).is_err());
    }
}
