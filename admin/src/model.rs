//! Model descriptions: what a table looks like to the admin. Every SQL identifier and expression
//! the admin uses comes from these static descriptions, never from a request.

use std::future::Future;
use std::sync::Arc;

use crate::host::{AdminUser, BoxFuture, WriteAction};

/// One column value, typed so that a NULL can be bound with the right type on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(Some(s.into()))
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Value::Int(None) | Value::Bool(None) | Value::Text(None)
        )
    }
}

/// Column values of one row, by column name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    cols: Vec<(&'static str, Value)>,
}

impl Values {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.cols.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
    }

    pub fn set(&mut self, column: &'static str, value: Value) {
        match self.cols.iter_mut().find(|(c, _)| *c == column) {
            Some((_, v)) => *v = value,
            None => self.cols.push((column, value)),
        }
    }

    pub fn text(&self, column: &str) -> Option<&str> {
        match self.get(column) {
            Some(Value::Text(Some(s))) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        match self.get(column) {
            Some(Value::Int(v)) => *v,
            _ => None,
        }
    }

    pub fn bool(&self, column: &str) -> Option<bool> {
        match self.get(column) {
            Some(Value::Bool(v)) => *v,
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.cols.iter().map(|(c, v)| (*c, v))
    }
}

/// How a field is stored, shown and edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One line of text, at most `max_len` characters.
    Text {
        max_len: usize,
    },
    TextArea {
        max_len: usize,
    },
    Bool,
    Int,
    /// BIGINT unix milliseconds, shown and entered as a UTC date-time.
    Timestamp,
    /// A BIGINT referring to `table.id`. `display` is a static SQL expression over the columns of
    /// `table` that names a row (e.g. `"username"`). `model` is the slug to link to.
    ForeignKey {
        model: &'static str,
        table: &'static str,
        display: &'static str,
    },
    /// A TEXT column holding one of the values; pairs are (value, label).
    Choice(&'static [(&'static str, &'static str)]),
    /// A password hash: only its algorithm is ever shown, and it is never editable; the password
    /// form (see [`ModelAdmin::password_form`]) sets it through the host.
    Secret,
}

/// Turns what was typed into the stored text, or says what is wrong with it.
pub type Validator = fn(&str) -> Result<String, String>;

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: FieldKind,
    pub readonly: bool,
    pub required: bool,
    /// Empty input is stored as NULL instead of an empty string.
    pub null: bool,
    /// Read-only for staff who are not superusers (e.g. `is_superuser`, so that staff cannot
    /// promote themselves).
    pub superuser_only: bool,
    pub validator: Option<Validator>,
    pub default: Option<Value>,
    pub help: Option<&'static str>,
    /// A yes/no kept in an INTEGER 0/1 column rather than a BOOLEAN one (see [`Field::flag`]).
    pub bool_as_int: bool,
}

impl Field {
    pub fn new(name: &'static str, label: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            label,
            kind,
            readonly: matches!(kind, FieldKind::Secret),
            required: false,
            null: false,
            superuser_only: false,
            validator: None,
            default: None,
            help: None,
            bool_as_int: false,
        }
    }

    pub fn text(name: &'static str, label: &'static str, max_len: usize) -> Self {
        Self::new(name, label, FieldKind::Text { max_len })
    }

    pub fn textarea(name: &'static str, label: &'static str, max_len: usize) -> Self {
        Self::new(name, label, FieldKind::TextArea { max_len })
    }

    pub fn bool(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Bool)
    }

    /// A yes/no stored as INTEGER 0/1: the portable choice through sqlx's Any driver, which
    /// cannot decode SQLite's BOOLEAN.
    pub fn flag(name: &'static str, label: &'static str) -> Self {
        Self {
            bool_as_int: true,
            ..Self::new(name, label, FieldKind::Bool)
        }
    }

    pub fn int(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Int)
    }

    pub fn timestamp(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Timestamp)
    }

    pub fn foreign_key(
        name: &'static str,
        label: &'static str,
        model: &'static str,
        table: &'static str,
        display: &'static str,
    ) -> Self {
        Self::new(
            name,
            label,
            FieldKind::ForeignKey {
                model,
                table,
                display,
            },
        )
    }

    pub fn choice(
        name: &'static str,
        label: &'static str,
        choices: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self::new(name, label, FieldKind::Choice(choices))
    }

    pub fn secret(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Secret)
    }

    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn nullable(mut self) -> Self {
        self.null = true;
        self
    }

    pub fn superuser_only(mut self) -> Self {
        self.superuser_only = true;
        self
    }

    pub fn validator(mut self, f: Validator) -> Self {
        self.validator = Some(f);
        self
    }

    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }

    pub fn help(mut self, text: &'static str) -> Self {
        self.help = Some(text);
        self
    }

    /// Whether this user may edit the field in a form.
    pub(crate) fn editable_by(&self, user: &AdminUser) -> bool {
        !self.readonly && (user.is_superuser || !self.superuser_only)
    }

    /// The value as the column stores it.
    pub(crate) fn stored(&self, value: &Value) -> Value {
        match value {
            Value::Bool(b) if self.bool_as_int => Value::Int(b.map(i64::from)),
            v => v.clone(),
        }
    }

    pub(crate) fn null_value(&self) -> Value {
        match self.kind {
            FieldKind::Bool => Value::Bool(None),
            FieldKind::Int | FieldKind::Timestamp | FieldKind::ForeignKey { .. } => {
                Value::Int(None)
            }
            _ => Value::Text(None),
        }
    }
}

/// What a user may do with a model, or with one object of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    pub view: bool,
    pub add: bool,
    pub change: bool,
    pub delete: bool,
}

impl Perms {
    pub const ALL: Perms = Perms {
        view: true,
        add: true,
        change: true,
        delete: true,
    };
    pub const VIEW: Perms = Perms {
        view: true,
        add: false,
        change: false,
        delete: false,
    };
}

/// Decides what `user` (already known to be active staff) may do. The second argument is the
/// object for object-level decisions (change form, delete, password form), or `None` for the
/// model as a whole (index, change list, add form). Object-level rules should only ever take
/// rights away compared with the model-level answer.
pub type PermissionRule = fn(&AdminUser, Option<&Values>) -> Perms;

/// Every active staff user may do everything: the default rule.
pub fn staff_may_do_everything(_: &AdminUser, _: Option<&Values>) -> Perms {
    Perms::ALL
}

/// Plain staff may view, add and change; only superusers delete.
pub fn only_superusers_delete(user: &AdminUser, _: Option<&Values>) -> Perms {
    Perms {
        delete: user.is_superuser,
        ..Perms::ALL
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// Related rows are deleted with the object, and listed on the confirmation page.
    Cascade,
    /// The referring column is set to NULL; nothing is listed.
    SetNull,
}

/// Rows of another table that refer to this model (`table.column = this.id`). The admin deletes
/// or detaches them itself, in the same transaction, so the outcome does not depend on whether
/// the database enforces foreign keys.
#[derive(Debug, Clone)]
pub struct Related {
    /// Plural name shown on the delete page ("messages").
    pub label: &'static str,
    pub table: &'static str,
    pub column: &'static str,
    /// Static SQL expression over `table`'s columns naming one row.
    pub display: &'static str,
    /// The slug of the registered model for `table`, for links, if any; `table` then has an
    /// `id` column.
    pub model: Option<&'static str>,
    pub on_delete: OnDelete,
}

impl Related {
    pub fn cascade(
        label: &'static str,
        table: &'static str,
        column: &'static str,
        display: &'static str,
    ) -> Self {
        Self {
            label,
            table,
            column,
            display,
            model: None,
            on_delete: OnDelete::Cascade,
        }
    }

    pub fn set_null(table: &'static str, column: &'static str) -> Self {
        Self {
            label: table,
            table,
            column,
            display: "id",
            model: None,
            on_delete: OnDelete::SetNull,
        }
    }

    pub fn linked_to(mut self, model: &'static str) -> Self {
        self.model = Some(model);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Add,
    Change,
}

/// Field errors: (field name, message); an empty field name is an error about the whole form.
pub type FieldErrors = Vec<(&'static str, String)>;

/// Runs after the fields are cleaned and before the row is written. On a change the values hold
/// the stored row overlaid with the form's input. The hook may check fields against each other
/// and set more columns (a lower-cased key, a creation time); columns it sets that are not
/// editable fields are written too.
pub type BeforeSave = fn(&mut Values, SaveKind) -> Result<(), FieldErrors>;

/// Turns a violation of a unique constraint into an error next to `field`.
#[derive(Debug, Clone)]
pub struct Unique {
    /// The constraint's (or unique index's) name, as PostgreSQL reports it.
    pub constraint: &'static str,
    /// The column, as SQLite reports it (`UNIQUE constraint failed: table.column`): SQLite names
    /// no constraint.
    pub column: &'static str,
    pub field: &'static str,
    pub message: &'static str,
}

/// Runs after an add, a change or a password change has been committed, with the ids written
/// (Django's `save_model` side effects): drop caches, end sessions.
pub type AfterSave = Arc<dyn Fn(Vec<i64>, WriteAction) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs after objects have been deleted (and their deletion logged), with their ids.
pub type AfterDelete = Arc<dyn Fn(Vec<i64>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Deletes one object in place of the admin's own `DELETE` (Django's `delete_model`); answers
/// whether the object was still there. It runs on its own connection, before the admin logs the
/// deletion, so that the application can delete the way it always does.
pub type DeleteModel =
    Arc<dyn Fn(i64) -> BoxFuture<'static, Result<bool, sqlx::Error>> + Send + Sync>;

/// The rows of a model a user may see at all (Django's `get_queryset(request)`): `None` for all,
/// or a SQL condition over the table's columns, unqualified. The `&'static str` keeps request
/// data out of it; it is applied to every view of the model (list, counts, search, change,
/// delete, history, password), and rows outside it are "not found".
pub type RowFilter = fn(&AdminUser) -> Option<&'static str>;

/// How a model's change list is ordered when `?o=` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ordering {
    pub column: &'static str,
    pub descending: bool,
}

/// In `list_display`, the row's name (the model's `display` expression), like Django's
/// `__str__`.
pub const STR_COLUMN: &str = "__str__";

/// One registered table.
#[derive(Clone)]
pub struct ModelAdmin {
    /// URL segment: `/admin/{slug}/`.
    pub slug: &'static str,
    pub table: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub fields: Vec<Field>,
    pub list_display: Vec<&'static str>,
    pub search_fields: Vec<&'static str>,
    pub list_filter: Vec<&'static str>,
    pub ordering: Ordering,
    /// Static SQL expression over the table's columns naming one row (Django's `__str__`).
    pub display: &'static str,
    pub permissions: PermissionRule,
    pub related: Vec<Related>,
    pub before_save: Option<BeforeSave>,
    /// The password-hash column, when the model has a "change password" form.
    pub password_column: Option<&'static str>,
    pub uniques: Vec<Unique>,
    pub per_page: i64,
    pub row_filter: Option<RowFilter>,
    pub after_save: Option<AfterSave>,
    pub after_delete: Option<AfterDelete>,
    pub delete_model: Option<DeleteModel>,
}

impl std::fmt::Debug for ModelAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelAdmin")
            .field("slug", &self.slug)
            .field("table", &self.table)
            .field("fields", &self.fields)
            .field("after_save", &self.after_save.is_some())
            .field("after_delete", &self.after_delete.is_some())
            .field("delete_model", &self.delete_model.is_some())
            .finish_non_exhaustive()
    }
}

impl ModelAdmin {
    /// A model with an `id BIGINT` primary key.
    pub fn new(
        slug: &'static str,
        table: &'static str,
        singular: &'static str,
        plural: &'static str,
    ) -> Self {
        Self {
            slug,
            table,
            singular,
            plural,
            fields: Vec::new(),
            list_display: Vec::new(),
            search_fields: Vec::new(),
            list_filter: Vec::new(),
            ordering: Ordering {
                column: "id",
                descending: true,
            },
            display: "id",
            permissions: staff_may_do_everything,
            related: Vec::new(),
            before_save: None,
            password_column: None,
            uniques: Vec::new(),
            per_page: 100,
            row_filter: None,
            after_save: None,
            after_delete: None,
            delete_model: None,
        }
    }

    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Columns of the change list, by field name; [`STR_COLUMN`] shows the row's name. The first
    /// column links to the change form.
    pub fn list_display(mut self, columns: &[&'static str]) -> Self {
        self.list_display = columns.to_vec();
        self
    }

    pub fn search_fields(mut self, columns: &[&'static str]) -> Self {
        self.search_fields = columns.to_vec();
        self
    }

    /// Sidebar filters; the kind of filter follows the field's kind (yes/no, choices, related
    /// object, date ranges).
    pub fn list_filter(mut self, columns: &[&'static str]) -> Self {
        self.list_filter = columns.to_vec();
        self
    }

    pub fn ordering(mut self, column: &'static str, descending: bool) -> Self {
        self.ordering = Ordering { column, descending };
        self
    }

    pub fn display(mut self, sql_expression: &'static str) -> Self {
        self.display = sql_expression;
        self
    }

    pub fn permissions(mut self, rule: PermissionRule) -> Self {
        self.permissions = rule;
        self
    }

    pub fn related(mut self, related: Related) -> Self {
        self.related.push(related);
        self
    }

    pub fn before_save(mut self, hook: BeforeSave) -> Self {
        self.before_save = Some(hook);
        self
    }

    /// Opt in to a password form at `/{slug}/{id}/password/` and to password fields on the add
    /// form. The add form stores the unusable hash `"!"` in `column` and then asks the host to
    /// set the typed password.
    pub fn password_form(mut self, column: &'static str) -> Self {
        self.password_column = Some(column);
        self
    }

    /// Shows a violation of the unique `constraint` (PostgreSQL's name for it) on `column` (how
    /// SQLite names it) as `message` next to `field`.
    pub fn unique(
        mut self,
        constraint: &'static str,
        column: &'static str,
        field: &'static str,
        message: &'static str,
    ) -> Self {
        self.uniques.push(Unique {
            constraint,
            column,
            field,
            message,
        });
        self
    }

    /// Limits the rows `user` may see; see [`RowFilter`].
    pub fn row_filter(mut self, filter: RowFilter) -> Self {
        self.row_filter = Some(filter);
        self
    }

    /// See [`AfterSave`].
    pub fn after_save<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Vec<i64>, WriteAction) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_save = Some(Arc::new(move |ids, action| Box::pin(hook(ids, action))));
        self
    }

    /// See [`AfterDelete`].
    pub fn after_delete<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Vec<i64>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_delete = Some(Arc::new(move |ids| Box::pin(hook(ids))));
        self
    }

    /// See [`DeleteModel`]. The admin still checks rights, asks for confirmation, lists what
    /// goes with the object and logs the deletion; only the `DELETE` itself is the hook's.
    pub fn delete_model<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(i64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, sqlx::Error>> + Send + 'static,
    {
        self.delete_model = Some(Arc::new(move |id| Box::pin(hook(id))));
        self
    }

    /// The row filter for this user, if any rows are hidden from them.
    pub(crate) fn rows_for(&self, user: &AdminUser) -> Option<&'static str> {
        self.row_filter.and_then(|f| f(user))
    }

    pub fn per_page(mut self, n: i64) -> Self {
        self.per_page = n.max(1);
        self
    }

    pub(crate) fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Panics on a description that names unknown fields or uses odd identifiers: a programming
    /// error better caught at start-up than as a 500 later.
    pub(crate) fn check(&self) {
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        assert!(
            ident(self.slug) && ident(self.table),
            "model {}: bad slug or table",
            self.slug
        );
        for f in &self.fields {
            assert!(
                ident(f.name),
                "model {}: bad column name {:?}",
                self.slug,
                f.name
            );
            if let FieldKind::ForeignKey { table, .. } = f.kind {
                assert!(ident(table), "model {}: bad table {table:?}", self.slug);
            }
        }
        for name in &self.list_display {
            assert!(
                *name == STR_COLUMN || self.field_named(name).is_some(),
                "model {}: unknown list column {name:?}",
                self.slug
            );
        }
        for name in self.search_fields.iter().chain(&self.list_filter) {
            assert!(
                self.field_named(name).is_some(),
                "model {}: unknown field {name:?}",
                self.slug
            );
        }
        for name in &self.list_filter {
            let kind = self.field_named(name).map(|f| f.kind);
            assert!(
                !matches!(
                    kind,
                    Some(
                        FieldKind::Text { .. }
                            | FieldKind::TextArea { .. }
                            | FieldKind::Int
                            | FieldKind::Secret
                    )
                ),
                "model {}: field {name:?} cannot be a filter",
                self.slug
            );
        }
        assert!(
            ident(self.ordering.column),
            "model {}: bad ordering column",
            self.slug
        );
        for r in &self.related {
            assert!(
                ident(r.table) && ident(r.column),
                "model {}: bad related table",
                self.slug
            );
        }
        for u in &self.uniques {
            assert!(
                self.field_named(u.field).is_some() && ident(u.column) && ident(u.constraint),
                "model {}: unique on unknown field or odd name",
                self.slug
            );
        }
        if let Some(col) = self.password_column {
            assert!(ident(col), "model {}: bad password column", self.slug);
        }
        assert!(
            self.field_named("id").is_some(),
            "model {}: declare the id field",
            self.slug
        );
    }
}
