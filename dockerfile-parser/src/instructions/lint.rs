//! Lint warnings (BuildKit rule names), returned as data.

use super::Instruction;
use crate::ast::Node;
use crate::lexer::Warning;

/// The few BuildKit lint rules that need only one instruction.
pub(super) fn lint(node: &Node, instruction: &Instruction, warnings: &mut Vec<Warning>) {
    let line = node.span.start_line;
    match instruction {
        Instruction::Maintainer(_) => warnings.push(Warning {
            rule: "MaintainerDeprecated",
            message: "Maintainer instruction is deprecated in favor of using label".into(),
            line,
        }),
        Instruction::From(_) if node.args.len() == 3 => {
            let stage = &node.args[2];
            if *stage != stage.to_lowercase() {
                warnings.push(Warning {
                    rule: "StageNameCasing",
                    message: format!("Stage name '{stage}' should be lowercase"),
                    line,
                });
            }
            let (from, as_kw) = (&node.name, &node.args[1]);
            let from_lower = *from == from.to_lowercase();
            let from_upper = *from == from.to_uppercase();
            let mismatch = (from_lower && *as_kw != as_kw.to_lowercase())
                || (from_upper && *as_kw != as_kw.to_uppercase());
            if mismatch {
                warnings.push(Warning {
                    rule: "FromAsCasing",
                    message: format!("'{as_kw}' and '{from}' keywords' casing do not match"),
                    line,
                });
            }
        }
        _ => {}
    }
}
