"""The inventory's model, as data: its event schema, its state definition and its built-in
projections. It sits below the SQL views and the ``Inventory`` that both use it, so that
neither has to import the other to know what an inventory is."""
