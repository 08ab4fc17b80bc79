//! The search space: block genes, the weighted choice table and the exact cost model.

pub mod cost;
pub mod gene;

use serde::{Deserialize, Serialize};

pub use cost::{Arch, BlockCost, ConvCost, NetworkCost, ReferenceEstimate};
pub use gene::{BlockGene, BlockKind, GeneError, GeneList};

/// The seed network of the reference's search (17 blocks, 520,595 params at
/// G0 32, x2): the size the search trains, and what `speed` and
/// `device-check` measure by default.
pub const SEED_GENES: &str = "G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 \
    S_4_16_24 G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 \
    G_6_16_64 G_8_16_16 S_8_16_32";

/// The `esrbody` part of the configuration, resolved: what blocks may be drawn
/// and how the network around them is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Allowed block kinds, in table order.
    pub block_type: Vec<BlockKind>,
    /// Allowed conv counts.
    pub conv_num: Vec<usize>,
    /// Allowed growth rates; output channels are drawn from the same list.
    pub growth_rate: Vec<usize>,
    /// Relative weight of each block kind.
    pub type_prob: Vec<f64>,
    /// Relative weight of each conv count.
    pub conv_prob: Vec<f64>,
    /// Relative weight of each growth rate (used for G and for O).
    pub growth_prob: Vec<f64>,
    /// Channels of the shallow features and global fusion.
    pub g0: usize,
    /// Upscaling factor (2, 3 or 4).
    pub scale: usize,
    /// Convolutions with biases (default) or without (reference 1.x).
    pub bias: bool,
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            block_type: BlockKind::ALL.to_vec(),
            conv_num: vec![4, 6, 8],
            growth_rate: vec![8, 16, 24, 32],
            type_prob: vec![1.0; 3],
            conv_prob: vec![1.0; 3],
            growth_prob: vec![1.0; 4],
            g0: 32,
            scale: 2,
            bias: true,
        }
    }
}

/// One entry of the choice table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The block this choice builds.
    pub gene: BlockGene,
    /// Its unnormalised sampling weight.
    pub weight: f64,
}

impl SearchSpace {
    /// The choice table in the reference's order: kind × convs × growth × out,
    /// where out runs over the growth values at or after G in the list.
    pub fn choices(&self) -> Vec<Choice> {
        let mut table = Vec::new();
        for (k, &kind) in self.block_type.iter().enumerate() {
            for (c, &convs) in self.conv_num.iter().enumerate() {
                for (g, &growth) in self.growth_rate.iter().enumerate() {
                    for (o, &out) in self.growth_rate.iter().enumerate().skip(g) {
                        if out < growth {
                            continue;
                        }
                        let Ok(gene) = BlockGene::new(kind, convs, growth, out) else {
                            continue;
                        };
                        table.push(Choice {
                            gene,
                            weight: self.type_prob[k]
                                * self.conv_prob[c]
                                * self.growth_prob[g]
                                * self.growth_prob[o],
                        });
                    }
                }
            }
        }
        table
    }

    /// Checks that a gene uses only values this space allows.
    pub fn validate_gene(&self, gene: &BlockGene) -> Result<(), GeneError> {
        let list = |v: &[usize]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let fail = |reason: String| Err(GeneError::new(gene.to_string(), reason));
        if !self.block_type.contains(&gene.kind) {
            let kinds: Vec<String> = self.block_type.iter().map(|k| k.to_string()).collect();
            return fail(format!(
                "block kind {} is not in block_type [{}]",
                gene.kind,
                kinds.join(", ")
            ));
        }
        if !self.conv_num.contains(&gene.convs) {
            return fail(format!(
                "conv count {} is not in conv_num [{}]",
                gene.convs,
                list(&self.conv_num)
            ));
        }
        if !self.growth_rate.contains(&gene.growth) {
            return fail(format!(
                "growth rate {} is not in growth_rate [{}]",
                gene.growth,
                list(&self.growth_rate)
            ));
        }
        if !self.growth_rate.contains(&gene.out) {
            return fail(format!(
                "output channels {} are not in growth_rate [{}]",
                gene.out,
                list(&self.growth_rate)
            ));
        }
        Ok(())
    }

    /// Checks every gene of a list against this space.
    pub fn validate_genes(&self, genes: &GeneList) -> Result<(), GeneError> {
        genes.iter().try_for_each(|g| self.validate_gene(g))
    }

    /// The network these genes build in this space.
    pub fn arch(&self, genes: GeneList) -> Arch {
        Arch {
            genes,
            g0: self.g0,
            scale: self.scale,
            bias: self.bias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_has_90_choices_in_reference_order() {
        let table = SearchSpace::default().choices();
        assert_eq!(table.len(), 90);
        let names: Vec<String> = table.iter().take(12).map(|c| c.gene.to_string()).collect();
        assert_eq!(
            names,
            [
                "S_4_8_8",
                "S_4_8_16",
                "S_4_8_24",
                "S_4_8_32",
                "S_4_16_16",
                "S_4_16_24",
                "S_4_16_32",
                "S_4_24_24",
                "S_4_24_32",
                "S_4_32_32",
                "S_6_8_8",
                "S_6_8_16"
            ]
        );
        assert_eq!(table.last().unwrap().gene.to_string(), "C_8_32_32");
    }

    #[test]
    fn weights_multiply_the_probabilities() {
        let space = SearchSpace {
            type_prob: vec![2.0, 1.0, 1.0],
            growth_prob: vec![1.0, 3.0, 1.0, 1.0],
            ..SearchSpace::default()
        };
        let table = space.choices();
        let w = |name: &str| {
            table
                .iter()
                .find(|c| c.gene.to_string() == name)
                .unwrap()
                .weight
        };
        assert_eq!(w("S_4_8_16"), 6.0);
        assert_eq!(w("S_4_16_16"), 18.0);
        assert_eq!(w("G_4_16_24"), 3.0);
    }

    #[test]
    fn validates_against_configured_lists() {
        let space = SearchSpace::default();
        let ok: BlockGene = "G_6_16_24".parse().unwrap();
        assert!(space.validate_gene(&ok).is_ok());
        let bad: BlockGene = "G_6_16_64".parse().unwrap();
        let msg = space.validate_gene(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("output channels 64 are not in growth_rate [8, 16, 24, 32]"),
            "{msg}"
        );
        let bad: BlockGene = "S_5_16_16".parse().unwrap();
        assert!(space
            .validate_gene(&bad)
            .unwrap_err()
            .to_string()
            .contains("conv_num"));
    }
}
