//! A named convolution layer whose forward pass goes through [`super::ops`].

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::ops;

/// Which of the network's convolution kinds a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// 3x3, padding 1.
    Conv3x3,
    /// 1x1 projection.
    Conv1x1,
    /// 3x3 with channel groups, padding 1.
    Grouped3x3 {
        /// Number of channel groups.
        groups: usize,
    },
}

impl ConvKind {
    fn kernel(self) -> usize {
        match self {
            ConvKind::Conv1x1 => 1,
            ConvKind::Conv3x3 | ConvKind::Grouped3x3 { .. } => 3,
        }
    }

    fn groups(self) -> usize {
        match self {
            ConvKind::Grouped3x3 { groups } => groups,
            _ => 1,
        }
    }
}

/// One convolution with its weights and the name prefix they are stored under
/// (`ERDBLayer.ERBD.0.InConv` holds `….weight` and `….bias`).
#[derive(Debug, Clone)]
pub struct Conv {
    name: String,
    kind: ConvKind,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv {
    /// Creates (or fetches, depending on the builder) the weights of a conv
    /// `in_ch → out_ch` under the builder's current prefix. Fresh weights use
    /// PyTorch's default init, U(±1/√fan_in) for weight and bias alike.
    pub fn new(
        vb: VarBuilder,
        kind: ConvKind,
        in_ch: usize,
        out_ch: usize,
        bias: bool,
    ) -> Result<Conv> {
        let k = kind.kernel();
        let groups = kind.groups();
        if groups == 0 || in_ch % groups != 0 || out_ch % groups != 0 {
            candle_core::bail!(
                "conv '{}': {in_ch}→{out_ch} channels cannot be split into {groups} groups",
                vb.prefix()
            );
        }
        let fan_in = (in_ch / groups) * k * k;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((out_ch, in_ch / groups, k, k), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(out_ch, "bias", init)?)
        } else {
            None
        };
        Ok(Conv {
            name: vb.prefix(),
            kind,
            weight,
            bias,
        })
    }

    /// Applies the convolution.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref();
        match self.kind {
            ConvKind::Conv3x3 => ops::conv3x3(x, &self.weight, bias),
            ConvKind::Conv1x1 => ops::conv1x1(x, &self.weight, bias),
            ConvKind::Grouped3x3 { groups } => ops::grouped_conv3x3(x, &self.weight, bias, groups),
        }
    }

    /// `relu(forward(x))` as one fused op (cheaper on the CPU: no separate
    /// ReLU tensor, and its backward is folded into the convolution's).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref();
        match self.kind {
            ConvKind::Conv3x3 => ops::conv3x3_relu(x, &self.weight, bias),
            ConvKind::Conv1x1 => crate::ops::conv2d_relu(x, &self.weight, bias, 1),
            ConvKind::Grouped3x3 { groups } => {
                ops::grouped_conv3x3_relu(x, &self.weight, bias, groups)
            }
        }
    }

    /// `relu(forward(channel_shuffle(x, shuffle)))` as one op: the shuffle is
    /// folded into the convolution's input reads on the CPU (no shuffled
    /// copy of `x` or of its gradient).
    pub fn forward_shuffled_relu(&self, x: &Tensor, shuffle: usize) -> Result<Tensor> {
        let groups = self.kind.groups();
        crate::ops::conv2d_shuffled_relu(x, &self.weight, self.bias.as_ref(), groups, shuffle)
    }

    /// The layer's kind.
    pub fn kind(&self) -> ConvKind {
        self.kind
    }

    /// Channel groups (1 unless grouped).
    pub fn groups(&self) -> usize {
        self.kind.groups()
    }

    /// Appends `(name, tensor)` for the weight and bias of this layer.
    pub fn collect_tensors(&self, out: &mut Vec<(String, Tensor)>) {
        out.push((format!("{}.weight", self.name), self.weight.clone()));
        if let Some(b) = &self.bias {
            out.push((format!("{}.bias", self.name), b.clone()));
        }
    }
}

impl Conv {
    /// The name prefix of the layer's tensors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight `[out, in/groups, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, when the network has biases.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Inputs feeding one output value: `in/groups · k · k`.
    pub fn fan_in(&self) -> usize {
        let d = self.weight.dims();
        d[1..].iter().product()
    }
}
