//! The dependency DAG: built from a recipe, checked for cycles, walked in
//! order, and printed as DOT. An edge `a → b` means `a` happens before `b`.

use crate::recipe::{
    Address, EdgeKind, ErrorKind, Recipe, RecipeError, RefTarget, Reference, Source,
};
use miette::SourceSpan;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::HashMap;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Variable(String),
    Resource(Address),
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Variable(v) => write!(f, "var.{v}"),
            Node::Resource(a) => a.fmt(f),
        }
    }
}

pub struct Graph {
    pub dag: DiGraph<Node, EdgeKind>,
    index: HashMap<Node, NodeIndex>,
}

impl Graph {
    /// Every variable and resource is a node; every reference an edge.
    pub fn build(recipe: &Recipe) -> Graph {
        Graph::from_parts(
            recipe.variables.iter().map(|v| v.name.as_str()),
            recipe
                .resources
                .iter()
                .map(|r| (&r.address, r.references.as_slice())),
        )
    }

    /// As `build`, from pieces: the loader checks cycles before the recipe
    /// is complete, so that they are reported with every other problem.
    pub fn from_parts<'a>(
        variables: impl Iterator<Item = &'a str>,
        resources: impl Iterator<Item = (&'a Address, &'a [Reference])> + Clone,
    ) -> Graph {
        let mut g = Graph {
            dag: DiGraph::new(),
            index: HashMap::new(),
        };
        for v in variables {
            g.node(Node::Variable(v.to_string()));
        }
        for (address, _) in resources.clone() {
            g.node(Node::Resource(address.clone()));
        }
        for (address, references) in resources {
            let me = g.node(Node::Resource(address.clone()));
            for reference in references {
                let other = g.node(match &reference.target {
                    RefTarget::Resource(a) => Node::Resource(a.clone()),
                    RefTarget::Variable(v) => Node::Variable(v.clone()),
                });
                // notify and quiesce point forward: the service acts after us.
                let (from, to) = match reference.kind {
                    EdgeKind::Notify | EdgeKind::Quiesce => (me, other),
                    EdgeKind::DependsOn | EdgeKind::Reference => (other, me),
                };
                let duplicate = g
                    .dag
                    .edges_connecting(from, to)
                    .any(|e| *e.weight() == reference.kind);
                if !duplicate {
                    g.dag.add_edge(from, to, reference.kind);
                }
            }
        }
        g
    }

    fn node(&mut self, n: Node) -> NodeIndex {
        if let Some(i) = self.index.get(&n) {
            return *i;
        }
        let i = self.dag.add_node(n.clone());
        self.index.insert(n, i);
        i
    }

    pub fn resource_count(&self) -> usize {
        self.dag
            .node_weights()
            .filter(|n| matches!(n, Node::Resource(_)))
            .count()
    }

    pub fn edge_count(&self) -> usize {
        self.dag.edge_count()
    }

    /// One error per cycle, naming every resource in it.
    pub fn cycle_errors(
        &self,
        source: &Source,
        spans: &HashMap<Address, SourceSpan>,
    ) -> Vec<RecipeError> {
        let mut errors = Vec::new();
        for scc in tarjan_scc(&self.dag) {
            if scc.len() < 2 {
                continue;
            }
            // tarjan_scc yields members in reverse order; show them in the
            // recipe's order, then walk the cycle so the message reads a → b → a.
            let members: Vec<&Node> = scc.iter().map(|i| &self.dag[*i]).collect();
            let cycle = self.cycle_path(&scc);
            let mut names: Vec<String> = cycle.iter().map(|i| self.dag[*i].to_string()).collect();
            if let Some(first) = names.first().cloned() {
                names.push(first);
            }
            let mut e = RecipeError::new(
                ErrorKind::Cycle,
                format!(
                    "dependency cycle between {} resources: {}",
                    members.len(),
                    names.join(" → ")
                ),
            )
            .help(
                "remove one of these depends_on / notify / quiesce references to break the cycle",
            );
            for node in &cycle {
                if let Node::Resource(a) = &self.dag[*node] {
                    if let Some(span) = spans.get(a) {
                        e = e.at(source, *span, format!("{a} is part of the cycle"));
                    }
                }
            }
            errors.push(e);
        }
        errors
    }

    /// Orders an SCC's nodes along edges, starting from the first declared.
    fn cycle_path(&self, scc: &[NodeIndex]) -> Vec<NodeIndex> {
        let mut start = scc.iter().copied().min().unwrap_or_default();
        let mut path = vec![start];
        while path.len() < scc.len() {
            let next = self
                .dag
                .edges(start)
                .map(|e| e.target())
                .filter(|t| scc.contains(t) && !path.contains(t))
                .min();
            match next {
                Some(n) => {
                    path.push(n);
                    start = n;
                }
                None => {
                    // Not a simple cycle: list the rest in declaration order.
                    let mut rest: Vec<NodeIndex> =
                        scc.iter().copied().filter(|n| !path.contains(n)).collect();
                    rest.sort();
                    path.extend(rest);
                }
            }
        }
        path
    }

    /// Resources in an order that respects every edge; ties keep the
    /// recipe's declaration order.
    pub fn order(&self) -> Vec<Address> {
        // Kahn's algorithm with a min-heap on the node index (= declaration
        // order) gives a stable order; petgraph's toposort does not promise one.
        let mut indegree: Vec<usize> = self
            .dag
            .node_indices()
            .map(|n| self.dag.neighbors_directed(n, petgraph::Incoming).count())
            .collect();
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<NodeIndex>> = self
            .dag
            .node_indices()
            .filter(|n| indegree[n.index()] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut out = Vec::new();
        while let Some(std::cmp::Reverse(n)) = ready.pop() {
            if let Node::Resource(a) = &self.dag[n] {
                out.push(a.clone());
            }
            for m in self.dag.neighbors_directed(n, petgraph::Outgoing) {
                indegree[m.index()] -= 1;
                if indegree[m.index()] == 0 {
                    ready.push(std::cmp::Reverse(m));
                }
            }
        }
        out
    }

    /// Is there a path from `a` to `b` (a happens before b)?
    pub fn precedes(&self, a: &Address, b: &Address) -> bool {
        match (
            self.index.get(&Node::Resource(a.clone())),
            self.index.get(&Node::Resource(b.clone())),
        ) {
            (Some(x), Some(y)) => petgraph::algo::has_path_connecting(&self.dag, *x, *y, None),
            _ => false,
        }
    }

    /// The graph in DOT; edge kinds differ in style and carry a label.
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph imlrecover {\n  rankdir = \"LR\";\n  node [fontname = \"Helvetica\"];\n",
        );
        for n in self.dag.node_weights() {
            let shape = match n {
                Node::Variable(_) => "note",
                Node::Resource(_) => "box",
            };
            let _ = writeln!(out, "  \"{n}\" [shape = {shape}];");
        }
        for e in self.dag.edge_references() {
            let style = match e.weight() {
                EdgeKind::DependsOn => "style = solid, color = black",
                EdgeKind::Notify => "style = dashed, color = blue",
                EdgeKind::Quiesce => "style = bold, color = red",
                EdgeKind::Reference => "style = dotted, color = gray40",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label = \"{}\", {style}];",
                self.dag[e.source()],
                self.dag[e.target()],
                e.weight().as_str()
            );
        }
        out.push_str("}\n");
        out
    }
}
