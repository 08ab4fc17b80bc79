//! Individuals: `node_num` slots, each a used bit and an index into the choice table.

use serde::{Deserialize, Serialize};

use crate::space::{Choice, GeneError, GeneList};

/// One slot of an individual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// Whether the slot contributes a block to the network.
    pub used: bool,
    /// Index into the choice table.
    pub choice: usize,
}

/// The genotype of ESR_EA: a fixed number of slots, of which the used ones,
/// in slot order, form the network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Individual {
    /// The slots, `node_num` of them.
    pub slots: Vec<Slot>,
}

impl Individual {
    /// Number of used slots (the network's depth).
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// The network's block genes: the used slots' choices in order.
    pub fn genes(&self, table: &[Choice]) -> GeneList {
        GeneList(
            self.slots
                .iter()
                .filter(|s| s.used)
                .map(|s| table[s.choice].gene)
                .collect(),
        )
    }

    /// Builds an individual whose first slots hold `genes` (all used) and whose
    /// remaining slots are unused, taking their choice from `filler`.
    ///
    /// Fails when a gene is not in the choice table or the list is longer than `node_num`.
    pub fn from_genes(
        genes: &GeneList,
        table: &[Choice],
        node_num: usize,
    ) -> Result<Individual, GeneError> {
        if genes.len() > node_num {
            return Err(GeneError::new(
                genes.to_string(),
                format!(
                    "{} blocks do not fit in node_num = {node_num} slots",
                    genes.len()
                ),
            ));
        }
        let mut slots = Vec::with_capacity(node_num);
        for gene in genes.iter() {
            let choice = table.iter().position(|c| c.gene == *gene).ok_or_else(|| {
                GeneError::new(
                    gene.to_string(),
                    "is not in the search space's choice table",
                )
            })?;
            slots.push(Slot { used: true, choice });
        }
        while slots.len() < node_num {
            slots.push(Slot {
                used: false,
                choice: 0,
            });
        }
        Ok(Individual { slots })
    }
}
