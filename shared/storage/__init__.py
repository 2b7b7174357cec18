"""Everything that talks to Azure Storage: the only package that imports azure.data.tables or
azure.storage."""
